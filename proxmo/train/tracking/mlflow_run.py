"""One MLflow run as a tracker: written to the run folder first and sent to MLflow, retried while the store does
not answer; and the SQLite store's schema made once whoever opens it first. MLflow is imported here only."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Set

from proxmo.train.tracking.record import (LINK_FILE, ClosingContext, JsonlTracker, check_status, flatten_params,
                                          numbers, points_by_step, read_json, read_metrics, write_json)

logger = logging.getLogger(__name__)


# MLflow error codes that mean the request itself is wrong; anything else means the store did not answer.
_REFUSED = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE",
            "RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED", "UNAUTHENTICATED"}


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the tracking store did not answer (retry later), not that the request is wrong."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code not in _REFUSED
    return isinstance(error, OSError) or type(error).__module__.split(".")[0] in ("requests", "urllib3", "sqlalchemy")


def sqlite_path(uri: str) -> Optional[Path]:
    """The database file of a ``sqlite:///path`` URI (relative to the CWD; four slashes: absolute), else None."""
    prefix = "sqlite:///"
    path = uri[len(prefix):].split("?", 1)[0] if uri.startswith(prefix) else ""
    return Path(path).resolve() if path and path != ":memory:" else None


def _sqlite_folder(uri: str) -> Optional[Path]:
    """The folder of the database of a ``sqlite:///path`` URI."""
    database = sqlite_path(uri)
    return database.parent if database else None


def mlflow_client(tracking_uri: Optional[str]):
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
    database = sqlite_path(uri)
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


class MlflowTracker(ClosingContext):
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
        self.client, self.tracking_uri = mlflow_client(tracking_uri)
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
            write_json(self.local.folder / LINK_FILE, {"tracking_uri": self.tracking_uri, "run_id": self.run_id,
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
            push(self.local.folder, self.client, self.run_id)
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
        items = [Metric(k, v, now, int(step)) for k, v in numbers(metrics).items()]
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
        check_status(status)
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
    return points_by_step((int(m.step), [key]) for key in client.get_run(run_id).data.metrics
                   for m in client.get_metric_history(run_id, key))


def push(folder: Path, client, run_id: str) -> Dict[str, int]:
    """Send to MLflow run ``run_id`` what it lacks of the record in ``folder`` (params, tags, metric points,
    artifacts, and the final status once the folder has one). Answers how many of each were sent."""
    from mlflow.entities import Metric, Param

    run = client.get_run(run_id)
    params = {k: v for k, v in read_json(folder / "params.json").items() if k not in run.data.params}
    tags = {k: v for k, v in read_json(folder / "tags.json").items() if run.data.tags.get(k) != v}
    held = _mlflow_points(client, run_id)
    points = [Metric(name, value, int(record["time"] * 1000), int(record["step"]))
              for record in read_metrics(folder)
              for name, value in record["metrics"].items() if name not in held.get(int(record["step"]), ())]
    client.log_batch(run_id, metrics=points, params=[Param(k, v) for k, v in params.items()], tags=_tags(tags))
    artifacts = sorted(p for p in (folder / "artifacts").glob("*") if p.is_file())
    if artifacts:
        client.log_artifacts(run_id, str(folder / "artifacts"))
    status = read_json(folder / "status.json")
    if status and run.info.status != status["status"]:
        client.set_terminated(run_id, status["status"], end_time=int(status["time"] * 1000))
    return {"params": len(params), "tags": len(tags), "metric_points": len(points), "artifacts": len(artifacts),
            "status": status.get("status", "")}
