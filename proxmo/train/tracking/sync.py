"""After the fact: send an MLflow run what it lacks of its folder (``proxmo sync``), and end a run whose job died
without closing it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

from proxmo.results.contract import METRICS_FILE
from proxmo.train.runfolder import writer_alive
from proxmo.train.tracking.mlflow_run import MlflowTracker, mlflow_client, push
from proxmo.train.tracking.record import LINK_FILE, check_status, read_json, write_json
from proxmo.train.tracking.uris import check_tracking_server


def sync_run(folder: str | Path, tracking_uri: Optional[str] = None) -> Dict[str, Any]:
    """Send what MLflow lacks of the run recorded in ``folder`` (``proxmo sync``); safe to repeat.

    A folder linked to an MLflow run (``mlflow.json``) goes to that run, on ``tracking_uri`` if given (the
    store moved), else the one it was recorded with. An unlinked folder (``run.tracker=jsonl``) becomes a
    new run named after the folder, in the experiment of its config, on ``tracking_uri`` or MLflow's default.
    """
    folder = Path(folder)
    if not (folder / METRICS_FILE).is_file() and not (folder / "params.json").is_file():
        raise FileNotFoundError(f"{folder}: not a run folder (no metrics.jsonl or params.json)")
    link = read_json(folder / LINK_FILE)
    check_tracking_server(tracking_uri or link.get("tracking_uri"))  # a dead server: seconds, not minutes
    if link:
        client, uri = mlflow_client(tracking_uri or link["tracking_uri"])
        run_id = link["run_id"]
    else:
        experiment = read_json(folder / "params.json").get("run.experiment", "proxmo")
        tracker = MlflowTracker(experiment, run_name=folder.name, tracking_uri=tracking_uri)
        client, uri, run_id = tracker.client, tracker.tracking_uri, tracker.run_id
        write_json(folder / LINK_FILE, {"tracking_uri": uri, "run_id": run_id, "experiment_id": tracker.experiment_id})
    sent = push(folder, client, run_id)
    return {"run_id": run_id, "tracking_uri": uri, **sent}


def close_abandoned(folder: str | Path, status: str) -> bool:
    """End a run whose job died without closing it (killed by a signal, its machine lost): ``status.json`` and
    the linked MLflow run (if still RUNNING) get ``status``. A run whose folder was closed keeps its status, and
    its MLflow run, if still RUNNING (the job died between the two), gets the same one; a folder a live job still
    writes is left alone. Answers whether it was abandoned. A retry continues the same run (back to RUNNING)."""
    folder = Path(folder)
    check_status(status)
    if not folder.is_dir() or writer_alive(folder):
        return False  # never started, or still written by a live job
    ended = read_json(folder / "status.json").get("status")
    if ended is None:
        write_json(folder / "status.json", {"status": status, "time": time.time()})
    link = read_json(folder / LINK_FILE)
    if link:  # a job stopped between ending its folder and its MLflow run ends the MLflow run the same way
        client, _ = mlflow_client(link["tracking_uri"])
        if client.get_run(link["run_id"]).info.status == "RUNNING":
            client.set_terminated(link["run_id"], ended or status)
    return ended is None
