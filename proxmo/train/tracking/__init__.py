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

from pathlib import Path
from typing import Mapping

from proxmo.train.tracking.mlflow_run import MlflowTracker, prepare_store
from proxmo.train.tracking.record import (LINK_FILE, STATUSES, TRACKER_KINDS, JsonlTracker, NullTracker, SkipLogged,
                                          Tracker, flatten_params, parse_records, read_metrics, skip_logged)
from proxmo.train.tracking.sync import close_abandoned, sync_run
from proxmo.train.tracking.uris import check_tracking_server, check_tracking_uri


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


__all__ = ["LINK_FILE", "JsonlTracker", "MlflowTracker", "NullTracker", "SkipLogged", "STATUSES", "TRACKER_KINDS", "Tracker",
           "check_tracking_server", "check_tracking_uri", "close_abandoned", "flatten_params", "make_tracker", "parse_records",
           "prepare_store", "read_metrics",
           "skip_logged", "sync_run"]
