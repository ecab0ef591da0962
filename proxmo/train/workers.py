"""One job on several workers (``run.workers``): Ray Train's ``TorchTrainer`` runs a :class:`~proxmo.train.job.Trainer`
on each worker, over a torch.distributed process group (gloo on CPUs, NCCL on GPUs).

Rank 0 keeps the run folder, the tracker and the checkpoints; every worker plays its share of the task groups
and of the evaluation episodes, and the update sums the workers' gradients (:mod:`proxmo.train.distributed`).
The run folder is the job's record, so what this process answers is read back from it once the workers end.

With ``run.max_failures`` Ray Train restarts the workers after one dies; the restarted job continues from the
run's last checkpoint (from its start when it had none yet), so the finished run's record is one run's.
Ray is imported here only, when a job on several workers starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from proxmo.results.contract import (ITERATION_SECONDS, STEPS_PER_SECOND, SUCCESS, SUMMARY_FILE, TRAIN_SUCCESS,
                                     Summary)
from proxmo.train.checkpoint import intact_checkpoint
from proxmo.train.config import TrainConfig
from proxmo.train.runfolder import latest_checkpoint, wait_for_writer
from proxmo.train.signals import Terminated, sigterm_received, terminate_as_exit
from proxmo.train.setup import resume_candidates_of, run_name
from proxmo.train.tracking import close_abandoned, read_metrics
from proxmo.train.tracking.follow import follow_records
from proxmo.urls import default_tracking_uri

logger = logging.getLogger(__name__)

WRITER_GRACE_S = 60.0
"""How long a stopped or failed job waits for rank 0 to let go of the run folder before closing the run."""

LAUNCH_FILE = "workers.json"
"""In the run folder of a job on several workers: which launch wrote it, on how many workers and on which Ray
node each ran (a restarted worker group recognises its own run by it and continues it)."""


def run_folder_of(config: TrainConfig) -> Path:
    """The folder the job writes: the resumed run's, else ``run.output_dir/run.name``."""
    candidates = resume_candidates_of(config.run.resume)
    if candidates:
        return candidates[0].parent.parent
    return Path(config.run.output_dir) / str(config.run.name)


def named(config: TrainConfig) -> TrainConfig:
    """``config`` with its run folder fixed: its name chosen once, here, for every worker, and its paths absolute as
    this process sees them (a worker runs in a folder of Ray Train's own, on this node or another), the MLflow
    store included when the run has one and none was named."""
    run = config.run
    folder = run_folder_of(config) if run.resume else None
    update: Dict[str, Any] = {"output_dir": str(Path(run.output_dir).resolve())}
    if folder is not None:
        update = {"name": folder.name, "output_dir": str(folder.parent.resolve()),
                  "resume": str(Path(run.resume).resolve())}
    elif run.name is None:
        update["name"] = run_name(config)
    if run.tracker in ("mlflow", "both") and run.tracking_uri is None:
        update["tracking_uri"] = default_tracking_uri()
    return config.model_copy(update={"run": run.model_copy(update=update)})


def check_resources(config: TrainConfig) -> None:
    """Refuse a job the Ray cluster cannot hold before any worker starts: Ray would wait for them for ever."""
    import ray

    run = config.run
    total = ray.cluster_resources()
    for name, each, field in (("CPU", run.worker_cpus, "run.worker_cpus"), ("GPU", run.worker_gpus, "run.worker_gpus")):
        needed = each * run.workers
        if needed > total.get(name, 0.0) + 1e-9:
            have = total.get(name, 0.0)
            where = "this machine has no GPU" if name == "GPU" and not have else f"the Ray cluster has {have:g}"
            raise ValueError(f"{field}: {run.workers} workers x {each:g} {name}s needs {needed:g} {name}s and "
                             f"{where}; lower run.workers or {field}")


def train_on_workers(config: TrainConfig, progress: bool = True):
    """Run the job on ``run.workers`` workers and answer its :class:`~proxmo.train.job.TrainResult`."""
    from envs.cluster import start_ray

    config = named(config)
    folder = run_folder_of(config)
    if not config.run.resume and folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"run folder {folder} already holds a run; continue it with run.resume={folder}, or "
                              "choose another run.name")
    # a progress bar keeps the console to itself: the workers' own output stays in Ray's logs
    started = start_ray(config.env.ray_address, log_to_driver=not progress)
    try:
        check_resources(config)
    except BaseException:
        if started:  # a refused job leaves Ray as it found it
            _shutdown_ray()
        raise
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    run = config.run
    resources = {"CPU": run.worker_cpus, **({"GPU": run.worker_gpus} if run.worker_gpus else {})}
    storage = Path(tempfile.mkdtemp(prefix="proxmo-train-"))
    trainer = TorchTrainer(
        work,
        train_loop_config={"config": config.to_dict(), "launch": uuid.uuid4().hex, "cwd": os.getcwd()},
        scaling_config=ScalingConfig(num_workers=run.workers, use_gpu=run.worker_gpus > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=folder.name, storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=run.max_failures)),
    )
    try:
        # ray.init put its own SIGTERM handler, which ends the process at once
        with terminate_as_exit(replace=True), progress_bar(folder, config, progress):
            trainer.fit()
    except BaseException as error:
        stopped = isinstance(error, (KeyboardInterrupt, SystemExit))
        if stopped and started:  # the workers go with the Ray this process started
            _shutdown_ray()
            started = False
        # a worker that died (or was stopped with this process) may have left the run RUNNING
        wait_for_writer(folder, WRITER_GRACE_S)
        close_abandoned(folder, "KILLED" if stopped else "FAILED")
        if isinstance(error, Terminated):
            error.run_dir = folder
        elif stopped and sigterm_received():  # ray.get turned the SIGTERM into an exit of its own
            terminated = Terminated()
            terminated.run_dir = folder
            raise terminated from None
        raise
    finally:
        if started:  # Ray goes as it came: started here, shut down here
            _shutdown_ray()
        shutil.rmtree(storage, ignore_errors=True)
    return result_of(folder)


def _shutdown_ray() -> None:
    import ray

    ray.shutdown()


@contextmanager
def progress_bar(folder: Path, config: TrainConfig, enabled: bool) -> Iterator[None]:
    """The job's progress, as one worker's job shows it, read from the run folder that rank 0 writes."""
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"[bold]train ({config.run.workers} workers)"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns) as bar:
        task = bar.add_task("train", total=config.run.iterations, status="starting the workers")

        def show(record: Dict[str, Any]) -> None:
            metrics = record["metrics"]
            if SUCCESS in metrics:
                bar.update(task, status=f"evaluated at {int(record['step'])}: success {metrics[SUCCESS]:.2f}")
            if ITERATION_SECONDS in metrics:
                bar.update(task, completed=int(record["step"]), status=f"success {metrics.get(TRAIN_SUCCESS, 0.0):.2f}"
                           f"  {metrics.get(STEPS_PER_SECOND, 0.0):.0f} steps/s")

        with follow_records(folder, show):
            yield


def work(payload: Dict[str, Any]) -> None:
    """What each worker runs (and runs again after a restart)."""
    import ray
    import ray.train
    import ray.train.torch

    from proxmo.train.distributed import Shard
    from proxmo.train.job import Trainer

    if Path(payload["cwd"]).is_dir():  # the command's folder, where this node has it: relative paths mean the same
        os.chdir(payload["cwd"])
    config = TrainConfig.model_validate(payload["config"])
    context = ray.train.get_context()
    shard = Shard(context.get_world_rank(), context.get_world_size())
    if config.run.worker_gpus > 0:
        device = str(ray.train.torch.get_device())
        config = config.model_copy(update={"model": config.model.model_copy(update={"device": device})})
    if shard.leader:
        config = continued(config, payload["launch"])
    trainer = Trainer(config, progress=False, shard=shard)
    nodes = shard.gather(ray.get_runtime_context().get_node_id())
    if shard.leader:
        (trainer.run_dir / LAUNCH_FILE).write_text(json.dumps({"launch": payload["launch"], "workers": shard.world,
                                                               "nodes": nodes}))
    trainer.run()


def continued(config: TrainConfig, launch: str) -> TrainConfig:
    """A restarted worker group goes on with its own run: from its last intact checkpoint, or from the start when
    it had none (the record of the attempt that died is closed and cleared)."""
    folder = run_folder_of(config)
    record = folder / LAUNCH_FILE
    if config.run.resume or not record.is_file() or json.loads(record.read_text()).get("launch") != launch:
        return config
    checkpoint = latest_checkpoint(folder)
    if checkpoint is not None:
        try:
            intact_checkpoint([checkpoint])
        except ValueError:
            checkpoint = None
    if checkpoint is not None:
        logger.warning("the workers restarted: continuing %s from %s", folder.name, checkpoint.name)
        return config.model_copy(update={"run": config.run.model_copy(update={"resume": str(folder)})})
    logger.warning("the workers restarted before the first checkpoint: %s starts again", folder.name)
    close_abandoned(folder, "FAILED")
    shutil.rmtree(folder)
    return config


def result_of(folder: Path):
    """The :class:`~proxmo.train.job.TrainResult` of a finished run, from its folder."""
    from proxmo.train.job import TrainResult

    summary_file = folder / SUMMARY_FILE
    if not summary_file.is_file():
        raise RuntimeError(f"the workers ended without writing {summary_file}: is {folder.parent} on storage every "
                           "node of the Ray cluster shares?")
    summary = Summary.from_dict(json.loads(summary_file.read_text()))
    history = [record["metrics"] for record in read_metrics(folder) if ITERATION_SECONDS in record["metrics"]]
    checkpoint: Optional[Path] = Path(summary.checkpoint) if summary.checkpoint else None
    return TrainResult(folder, summary.iterations, history, summary.evaluations, summary.random_baseline,
                       summary.stopped, checkpoint)


__all__ = ["LAUNCH_FILE", "check_resources", "result_of", "train_on_workers"]
