"""How the training job reports params, metrics, artifacts and status: JSONL files, MLflow, both or nothing.

MLflow is imported only when an :class:`MlflowTracker` is created, so the job itself runs on machines
that have torch and transformers alone (use ``"jsonl"`` there and import the files later)::

    tracker = make_tracker("both", run_folder, experiment="alfworld", run_name="proxmo-seed0",
                           tracking_uri="sqlite:////data/mlflow/mlflow.db")
    with tracker:                       # closes FINISHED, or FAILED / KILLED on an exception
        tracker.log_params({"optim": {"lr": 1e-6}})          # logged as "optim.lr"
        tracker.log_metrics({"train/loss": 0.3}, step=1)
        tracker.log_artifact("checkpoints/last", artifact_path="model")
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import posixpath
import re
import shutil
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Set, runtime_checkable
from urllib.parse import unquote

# Limits of the MLflow tracking API (mlflow.utils.validation); the JSONL tracker applies them too so
# that a run recorded offline can always be imported into MLflow later.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_NAME_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
TRUNCATION_MARKER = "...[truncated]"
STATUSES = ("FINISHED", "FAILED", "KILLED")
TRACKER_KINDS = ("jsonl", "mlflow", "both", "none")

# MLflow also accepts ':' except on Windows, and any Unicode letter; this portable subset is
# accepted by every MLflow store.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_./ \-]+")


@runtime_checkable
class Tracker(Protocol):
    """What a training job needs from an experiment tracker."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record configuration; nested mappings are flattened with dots ("optim.lr")."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record numeric values for one training step."""

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Keep a copy of a file or folder with the run, under ``artifact_path`` if given."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Attach string labels to the run."""

    def close(self, status: str = "FINISHED") -> None:
        """End the run with status FINISHED, FAILED or KILLED."""


# --- validation and flattening ------------------------------------------------------------------


def _check_name(name: Any, what: str) -> str:
    """Return ``name`` if MLflow accepts it as a metric / param / tag key; else raise ValueError naming it."""
    if not isinstance(name, str):
        raise ValueError(f"{what} name {name!r}: must be a string, got {type(name).__name__}")
    if not _NAME_PATTERN.fullmatch(name):
        bad = sorted({c for c in name if not _NAME_PATTERN.fullmatch(c)})
        detail = f"characters {bad!r} are not allowed" if bad else "it is empty"
        raise ValueError(
            f"{what} name {name!r}: {detail}; use only letters, digits, '_', '.', '/', '-' and spaces"
        )
    # MLflow may store a name as a file path, so it must not normalise to another one.
    if posixpath.normpath(name) != name or name == "." or name.startswith(("/", "..")):
        raise ValueError(f"{what} name {name!r}: must be a clean relative path (no '//', './', '..' or leading '/')")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} name {name[:60]!r}...: longer than {MAX_NAME_LENGTH} characters")
    return name


def check_metric_name(name: str) -> str:
    """Return ``name`` unchanged if it is a valid metric name, else raise ValueError naming it.

    Allowed: letters, digits, ``_ . / -`` and spaces, at most 250 characters, a clean relative
    path (``train/loss`` yes; ``train//loss``, ``/loss``, ``acc:val`` no).
    """
    return _check_name(name, "metric")


def _metric_value(name: str, value: Any) -> float:
    """Convert one metric value to float; None, bools, strings and other non-numbers raise naming the metric.

    NaN and inf are kept: they are what the run produced.
    """
    if value is None:
        raise ValueError(f"metric {name!r}: value is None")
    if isinstance(value, bool):
        raise ValueError(f"metric {name!r}: value is a bool ({value}); log float(value) if that is meant")
    if isinstance(value, numbers.Real):
        return float(value)
    # numpy scalars, 0-d arrays and one-element tensors, without importing numpy or torch.
    item = getattr(value, "item", None)
    if callable(item):
        try:
            inner = item()
        except (ValueError, RuntimeError, TypeError):  # more than one element
            inner = value
        if inner is not value:
            return _metric_value(name, inner)
    raise ValueError(f"metric {name!r}: value {value!r} of type {type(value).__name__} is not a number")


def _check_step(step: Any) -> int:
    """Return ``step`` as int; raise ValueError unless it is an integer (bools excluded)."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise ValueError(f"step: must be an integer, got {step!r} of type {type(step).__name__}")
    return int(step)


def _check_status(status: str) -> str:
    """Return ``status`` if it is one of FINISHED, FAILED, KILLED, else raise ValueError."""
    if status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of {list(STATUSES)}")
    return status


def _param_text(value: Any) -> str:
    """One param value as text: lists/tuples as JSON, everything else through str(), capped at 6000 chars."""
    if isinstance(value, (list, tuple)):
        text = json.dumps(list(value), default=str)
    elif isinstance(value, Mapping):  # only reached for an empty mapping
        text = json.dumps(dict(value), default=str)
    else:
        text = str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[: MAX_PARAM_VALUE_LENGTH - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    return text


def _as_mapping(value: Any) -> Optional[Mapping[str, Any]]:
    """A mapping view of ``value`` if it is a mapping, a dataclass instance or a pydantic model; else None."""
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)  # pydantic v2, without importing it
    if callable(dump) and not isinstance(value, type):
        return dump()
    return None


def flatten_params(nested: Mapping[str, Any], prefix: str = "") -> Dict[str, str]:
    """Flatten nested params into dotted string keys with string values.

    ``{"optim": {"lr": 1e-6, "betas": [0.9, 0.999]}}`` -> ``{"optim.lr": "1e-06", "optim.betas": "[0.9, 0.999]"}``.
    Nested dataclasses and pydantic models are flattened like mappings; an empty mapping becomes
    ``"{}"``; lists and tuples become JSON text; values longer than MLflow's 6000 characters are
    cut and end with ``"...[truncated]"``.
    """
    mapping = _as_mapping(nested)
    if mapping is None:
        raise TypeError(f"params: expected a mapping, dataclass or pydantic model, got {type(nested).__name__}")
    flat: Dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        child = _as_mapping(value)
        if child:
            flat.update(flatten_params(child, name))
        else:
            flat[name] = _param_text(value if child is None else {})
    return flat


def _clean_params(params: Mapping[str, Any]) -> Dict[str, str]:
    """Flatten ``params`` and check every resulting key."""
    flat = flatten_params(params)
    for key in flat:
        _check_name(key, "param")
    return flat


def _clean_metrics(metrics: Mapping[str, Any]) -> Dict[str, float]:
    """Check every metric name and convert every value to float."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics: expected a mapping of name -> number, got {type(metrics).__name__}")
    return {check_metric_name(name): _metric_value(name, value) for name, value in metrics.items()}


def _clean_tags(tags: Mapping[str, Any]) -> Dict[str, str]:
    """Check every tag key; values are stringified."""
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags: expected a mapping of name -> string, got {type(tags).__name__}")
    return {_check_name(key, "tag"): str(value) for key, value in tags.items()}


def _clean_artifact_path(artifact_path: Optional[str]) -> Optional[str]:
    """Return ``artifact_path`` as a normalised relative POSIX path (None / "" -> None); reject escapes."""
    if artifact_path is None or artifact_path in ("", "."):
        return None
    normal = posixpath.normpath(str(artifact_path).replace(os.sep, "/"))
    if normal.startswith("/") or normal == ".." or normal.startswith("../"):
        raise ValueError(f"artifact_path {artifact_path!r}: must be a relative path inside the run's artifacts")
    return None if normal == "." else normal


def _existing(path: str | Path) -> Path:
    """``path`` as a Path, or FileNotFoundError naming it."""
    local = Path(path)
    if not local.exists():
        raise FileNotFoundError(f"artifact {str(path)!r}: no such file or folder")
    return local


def _batches(items: Sequence[Any], size: int) -> List[Sequence[Any]]:
    """Split ``items`` into consecutive chunks of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- trackers -----------------------------------------------------------------------------------


class _ClosingContext:
    """Context-manager behaviour shared by the trackers: close FINISHED, or FAILED / KILLED on error."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self.close(status)  # type: ignore[attr-defined]


class NullTracker(_ClosingContext):
    """Validates its input like the other trackers and records nothing."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        _clean_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        _clean_metrics(metrics)
        _check_step(step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        _existing(path)
        _clean_artifact_path(artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        _clean_tags(tags)

    def close(self, status: str = "FINISHED") -> None:
        _check_status(status)


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> Dict[str, Any]:
    """The JSON object in ``path``, or {} if the file does not exist."""
    return json.loads(path.read_text()) if path.exists() else {}


def _copy_artifact(source: Path, folder: Path) -> Path:
    """Copy a file or a whole folder into ``folder`` (created), keeping its name; return the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return target


class JsonlTracker(_ClosingContext):
    """Records a run as plain files in ``folder`` (created if missing).

    * ``params.json``: flattened params (merged over calls), ``tags.json``: tags (merged);
    * ``metrics.jsonl``: one line per :meth:`log_metrics` call,
      ``{"step": s, "time": unix_seconds, "metrics": {...}}`` (NaN / inf written as Python's json
      does: ``NaN``, ``Infinity``); load it with :func:`read_metrics`;
    * ``artifacts/<artifact_path>/<name>``: copies of logged files and folders;
    * ``status.json``: ``{"status": ..., "time": ...}``, written by :meth:`close`.

    Each write is flushed at once, so the files can be read while the job runs. Thread-safe.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.closed = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = _clean_params(params)
        with self._lock:
            path = self.folder / "params.json"
            _write_json(path, {**_read_json(path), **flat})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        record = {"step": _check_step(step), "time": time.time(), "metrics": _clean_metrics(metrics)}
        line = json.dumps(record) + "\n"
        with self._lock, open(self.folder / "metrics.jsonl", "a") as handle:
            handle.write(line)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        source = _existing(path)
        sub = _clean_artifact_path(artifact_path)
        destination = self.folder / "artifacts"
        if sub is not None:
            destination = destination / PurePosixPath(sub)
        with self._lock:
            _copy_artifact(source, destination)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        clean = _clean_tags(tags)
        with self._lock:
            path = self.folder / "tags.json"
            _write_json(path, {**_read_json(path), **clean})

    def close(self, status: str = "FINISHED") -> None:
        _check_status(status)
        with self._lock:
            _write_json(self.folder / "status.json", {"status": status, "time": time.time()})
            self.closed = True

    def logged(self) -> Dict[int, Set[str]]:
        """The metric names already recorded at each step."""
        points: Dict[int, Set[str]] = {}
        for record in read_metrics(self.folder):
            points.setdefault(int(record["step"]), set()).update(record["metrics"])
        return points


def read_metrics(folder: str | Path) -> List[Dict[str, Any]]:
    """Load the records of ``folder/metrics.jsonl`` written by :class:`JsonlTracker`, in order.

    A cut-off last line (the job died while writing it) is skipped; a broken line elsewhere raises.
    Returns [] when the run has logged no metrics yet.
    """
    path = Path(folder) / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not valid JSON ({error})") from error
    return records


def _sqlite_folder(tracking_uri: str) -> Optional[Path]:
    """The folder holding the database of a ``sqlite:///path/to/mlflow.db`` URI, or None for other URIs.

    Three slashes then a relative path is relative to the CWD (SQLAlchemy's rule); four slashes
    means an absolute path. In-memory databases give None.
    """
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    path = unquote(tracking_uri[len(prefix):].split("?", 1)[0])
    if not path or path == ":memory:":
        return None
    return Path(path).resolve().parent


class MlflowTracker(_ClosingContext):
    """Records a run in MLflow through ``MlflowClient``, with explicit run ids.

    No global active run is used, so several trackers can live in one process or thread pool
    (e.g. one per Optuna trial, each a child of a parent run via ``parent_run_id``).

    experiment: created if missing. run_name: MLflow picks a random one if None. tracking_uri:
    defaults to MLflow's (``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``).
    artifact_location: only used when the experiment is created; with a sqlite URI it defaults to
    ``<folder of the db>/artifacts`` rather than MLflow's ``./mlruns`` under the CWD.
    Attributes: ``client``, ``run_id``, ``experiment_id``, ``tracking_uri``.
    """

    def __init__(
        self,
        experiment: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        artifact_location: str | None = None,
        run_id: str | None = None,
    ):
        try:
            import mlflow
        except ImportError as error:  # the GPU machines have no mlflow: say what to do instead
            raise ImportError(
                "MlflowTracker needs the 'mlflow' package; install it or use the 'jsonl' tracker "
                "and import the files later"
            ) from error
        from mlflow.entities import Metric, Param, RunTag

        self._Metric, self._Param, self._RunTag = Metric, Param, RunTag
        if not experiment:
            raise ValueError("experiment: must be a non-empty name")
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        db_folder = _sqlite_folder(self.tracking_uri)
        if db_folder is not None:
            # SQLite creates the file but not its folder.
            db_folder.mkdir(parents=True, exist_ok=True)
            if artifact_location is None:
                artifact_location = (db_folder / "artifacts").as_uri()
        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_id = self._get_or_create_experiment(experiment, artifact_location)

        run_tags = _clean_tags(tags or {})
        if parent_run_id is not None:
            self.client.get_run(parent_run_id)  # fails now, with MLflow's message, if there is no such run
            run_tags["mlflow.parentRunId"] = parent_run_id
        if run_id is not None:  # continue a run (a resumed training job): same id, metrics go on
            run = self.client.get_run(run_id)
            self.client.update_run(run_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, tags=run_tags, run_name=run_name)
        self.run_id: str = run.info.run_id
        self.run_name: str = run.info.run_name
        self.closed = False
        if run_id is not None and run_tags:
            self.set_tags(run_tags)

    def _get_or_create_experiment(self, name: str, artifact_location: Optional[str]) -> str:
        """The id of experiment ``name``, creating it if needed (tolerating a concurrent creator)."""
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name, artifact_location=artifact_location)
            except MlflowException:
                # Another process may have created it between the lookup and the create.
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage != "active":
            raise ValueError(
                f"experiment {name!r} is deleted; restore it (MlflowClient.restore_experiment) "
                "or use another name"
            )
        return experiment.experiment_id

    def _log_batch(self, **entities: Sequence[Any]) -> None:
        """One synchronous ``log_batch`` call, so errors surface at the call that caused them."""
        self.client.log_batch(self.run_id, synchronous=True, **entities)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flattened params; MLflow refuses to change the value of a param already logged."""
        items = [self._Param(key, value) for key, value in _clean_params(params).items()]
        for chunk in _batches(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._log_batch(params=chunk)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        step = _check_step(step)
        timestamp = int(time.time() * 1000)
        items = [self._Metric(key, value, timestamp, step) for key, value in _clean_metrics(metrics).items()]
        for chunk in _batches(items, MAX_METRICS_PER_BATCH):
            self._log_batch(metrics=chunk)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file, or a folder (kept under its own name, as :class:`JsonlTracker` does)."""
        source = _existing(path)
        sub = _clean_artifact_path(artifact_path)
        if source.is_dir():
            target = posixpath.join(sub, source.name) if sub else source.name
            self.client.log_artifacts(self.run_id, str(source), target)
        else:
            self.client.log_artifact(self.run_id, str(source), sub)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        items = [self._RunTag(key, value) for key, value in _clean_tags(tags).items()]
        for chunk in _batches(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._log_batch(tags=chunk)

    def logged(self) -> Dict[int, Set[str]]:
        """The metric names already recorded at each step of this run."""
        points: Dict[int, Set[str]] = {}
        for key in self.client.get_run(self.run_id).data.metrics:
            for metric in self.client.get_metric_history(self.run_id, key):
                points.setdefault(int(metric.step), set()).add(key)
        return points

    def close(self, status: str = "FINISHED") -> None:
        """End the run; closing twice is a no-op so ``with`` plus an explicit close is safe."""
        _check_status(status)
        if self.closed:
            return
        self.client.set_terminated(self.run_id, status)
        self.closed = True


class MultiTracker(_ClosingContext):
    """Sends every call to all of ``trackers``.

    A failing tracker does not stop the others (a dead MLflow server must not lose the JSONL
    record): every tracker gets the call, then the first error is raised.
    """

    def __init__(self, *trackers: Tracker):
        self.trackers = list(trackers)

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call ``method`` on every tracker; re-raise the first error after all have been called."""
        first_error: Optional[BaseException] = None
        for tracker in self.trackers:
            try:
                getattr(tracker, method)(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - re-raised below
                if first_error is None:
                    first_error = error
        if first_error is not None:
            raise first_error

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._each("log_params", params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._each("log_metrics", metrics, step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._each("log_artifact", path, artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._each("set_tags", tags)

    def close(self, status: str = "FINISHED") -> None:
        self._each("close", status)


class SkipLogged(_ClosingContext):
    """Forwards to ``tracker`` every metric point it does not hold yet.

    A resumed run replays the iterations after its last checkpoint with the same random states, so
    those points are already recorded (with the same values); skipping them keeps one point per step.
    """

    def __init__(self, tracker: Tracker, logged: Mapping[int, Set[str]]):
        self.tracker = tracker
        self._logged = {step: set(keys) for step, keys in logged.items()}

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.tracker.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        held = self._logged.get(int(step), set())
        fresh = {key: value for key, value in metrics.items() if key not in held}
        if fresh:
            self.tracker.log_metrics(fresh, step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(path, artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tracker.set_tags(tags)

    def close(self, status: str = "FINISHED") -> None:
        self.tracker.close(status)


def skip_logged(tracker: Tracker) -> Tracker:
    """``tracker`` made to skip the points each of its parts already holds (see :class:`SkipLogged`)."""
    if isinstance(tracker, MultiTracker):
        return MultiTracker(*(skip_logged(part) for part in tracker.trackers))
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

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or not uri.lower().startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status >= 400:
                raise urllib.error.HTTPError(uri, response.status, response.reason, response.headers, None)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise ConnectionError(f"run.tracking_uri: the MLflow server at {uri} does not answer ({reason}); start it, "
                              "or set run.tracker=jsonl and import the run later") from None


def make_tracker(
    kind: str,
    folder: str | Path,
    experiment: str,
    run_name: str,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Tracker:
    """Build the tracker a job config asks for.

    kind: ``"jsonl"`` (files in ``folder``), ``"mlflow"`` (run ``run_name`` in ``experiment``, or
    the existing run ``run_id``; a child of ``parent_run_id`` when given), ``"both"`` or ``"none"``.
    """
    if kind == "jsonl":
        return JsonlTracker(folder)
    if kind in ("mlflow", "both"):
        # MLflow first: if it cannot start, fail before creating files for a run that never began.
        mlflow_tracker = MlflowTracker(experiment, run_name=run_name, tracking_uri=tracking_uri, run_id=run_id,
                                       parent_run_id=parent_run_id, tags=tags)
        return mlflow_tracker if kind == "mlflow" else MultiTracker(JsonlTracker(folder), mlflow_tracker)
    if kind == "none":
        return NullTracker()
    raise ValueError(f"kind: unknown tracker {kind!r}; expected one of {list(TRACKER_KINDS)}")


__all__ = [
    "JsonlTracker",
    "MlflowTracker",
    "MultiTracker",
    "NullTracker",
    "SkipLogged",
    "STATUSES",
    "TRACKER_KINDS",
    "Tracker",
    "check_metric_name",
    "check_tracking_server",
    "check_tracking_uri",
    "flatten_params",
    "make_tracker",
    "read_metrics",
    "skip_logged",
]
