"""A run's own record in its folder (``params.json``, ``tags.json``, ``metrics.jsonl``, ``artifacts/``,
``status.json``): the tracker protocol, the folder tracker, reading the metrics back, and a tracker that skips the
points a resumed run already holds."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Protocol, Set, runtime_checkable

from proxmo.results.contract import METRICS_FILE
from proxmo.train.runfolder import repair_cut_line, write_atomic


STATUSES = ("FINISHED", "FAILED", "KILLED")


TRACKER_KINDS = ("jsonl", "mlflow", "both", "none")


MAX_PARAM_VALUE_LENGTH = 6000  # MLflow refuses longer param values


TRUNCATION_MARKER = "...[truncated]"


LINK_FILE = "mlflow.json"  # in a run folder: which MLflow run mirrors it


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


def numbers(metrics: Mapping[str, Any]) -> Dict[str, float]:
    """Every value as a float (NaN and inf kept: they are what the run produced); a non-number raises naming it."""
    clean = {}
    for name, value in metrics.items():
        try:
            clean[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric {name!r}: {value!r} is not a number") from None
    return clean


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"status: {status!r} is not one of {list(STATUSES)}")
    return status


class ClosingContext:
    """``with tracker:`` closes FINISHED, KILLED on an interrupt, FAILED on any other exception."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close("FINISHED")  # type: ignore[attr-defined]
        else:
            self.close("KILLED" if issubclass(exc_type, (KeyboardInterrupt, SystemExit)) else "FAILED")  # type: ignore[attr-defined]


class NullTracker(ClosingContext):
    """Records nothing (metric values are still checked to be numbers)."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        numbers(metrics)

    def log_artifact(self, path: str | Path) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        check_status(status)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically, so a crash never leaves half a file."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


class JsonlTracker(ClosingContext):
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
            write_json(path, {**read_json(path), **flatten_params(params)})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        line = json.dumps({"step": int(step), "time": time.time(), "metrics": numbers(metrics)}) + "\n"
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
            write_json(path, {**read_json(path), **{str(k): str(v) for k, v in tags.items()}})

    def close(self, status: str = "FINISHED") -> None:
        with self._lock:
            write_json(self.folder / "status.json", {"status": check_status(status), "time": time.time()})

    def logged(self) -> Dict[int, Set[str]]:
        """The metric names already recorded at each step."""
        return points_by_step((int(r["step"]), r["metrics"]) for r in read_metrics(self.folder))


def points_by_step(pairs) -> Dict[int, Set[str]]:
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


class SkipLogged(ClosingContext):
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
