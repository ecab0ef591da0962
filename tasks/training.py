"""Prefect tasks around the training job: run it (here or as a Ray task that asks for GPUs) and publish its results."""

from __future__ import annotations

import copy
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from proxmo.results import contract
from proxmo.results.contract import (GREEDY, ITERATION_SECONDS, LOSS, METRICS_FILE, RANDOM, SUMMARY_FILE, TRAIN_SUCCESS, VAL,
                                     Summary, quantity_key, success_key)

if TYPE_CHECKING:
    from proxmo.train.config import TrainConfig

LAUNCHERS = ("local", "ray")


def run_job(config: Mapping[str, Any], trial: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Run one training job from a config dict; answers a JSON-friendly summary.

    ``trial`` (``storage``, ``study``, ``number``, ``metric``, ``pruner``, ``report``) makes the job report ``metric`` at every
    evaluation to that Optuna trial and stop early when the study's pruner says so.

    A job whose named run folder already holds a finished run (``summary.json`` with all its
    iterations) is not run again; one that holds checkpoints continues from the latest; a folder
    with neither (a run that died before its first checkpoint) is moved aside, never trained over.
    """
    from proxmo.train.config import build_config
    from proxmo.train.job import train

    checked = build_config(copy.deepcopy(dict(config)))  # a bad config is refused before any work
    finished = _finished_run(checked)
    if finished is not None:
        return finished
    resume = _resume_or_move_aside(checked)
    if resume is not None:
        checked = checked.model_copy(update={"run": checked.run.model_copy(update={"resume": resume})})
    callback = trial_reporter(trial) if trial else None
    result = train(checked, progress=False, on_evaluation=callback)
    return _job_summary(checked, result.run_dir, Summary.read(result.run_dir))


def make_pruner(spec: str):
    """The Optuna pruner named by ``spec``: ``median``, ``none``, or ``threshold:<lower>``.

    Pruners are not kept in the study's storage, so every process that asks ``should_prune`` builds the
    same one from this name.
    """
    import optuna

    if spec == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if spec == "none":
        return optuna.pruners.NopPruner()
    kind, _, value = spec.partition(":")
    if kind == "threshold":
        try:
            return optuna.pruners.ThresholdPruner(lower=float(value))
        except ValueError:
            pass
    raise ValueError(f"pruner: expected median, none or threshold:<lower>, got {spec!r}")


def trial_reporter(trial: Mapping[str, Any]):
    """An evaluation callback that reports to an Optuna trial (any process can: the study is in RDB storage) and
    stops the job when the study's pruner says so; with ``report`` false it only asks (another seed reports)."""
    import optuna

    from proxmo.train.job import StopRun

    storage = optuna.storages.get_storage(trial["storage"])
    study = optuna.load_study(study_name=trial["study"], storage=storage, pruner=make_pruner(trial.get("pruner", "median")))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial["study"]),
                                                              int(trial["number"]))
    handle = optuna.trial.Trial(study, trial_id)
    metric = trial["metric"]

    def report(step: int, metrics: Mapping[str, float]) -> None:
        if metric in metrics and trial.get("report", True):
            handle.report(float(metrics[metric]), step)
        if handle.should_prune():
            raise StopRun(f"pruned by the study at step {step}")

    return report


def _job_summary(config: "TrainConfig", run_dir: Path, summary: Summary) -> Dict[str, Any]:
    """What a job answers (JSON-friendly, so that it crosses a Ray task's boundary): where its run is, what it
    was (its config's env, estimator and seed) and its :class:`~proxmo.results.contract.Summary` as a dict."""
    return {
        "run_dir": str(run_dir),
        "run_name": run_dir.name,
        "iterations": summary.iterations,
        "env": config.env.name,
        "estimator": config.advantage.estimator,
        "seed": config.run.seed,
        "final_eval": summary.final_eval,
        "checkpoint": summary.checkpoint,
        "summary": summary.to_dict(),
        "pid": os.getpid(),  # which process ran (or found) the job: a Ray worker or this one
        "ray_node": _ray_node(),  # and on which Ray node (None outside Ray)
    }


def _ray_node() -> Optional[str]:
    import sys

    ray = sys.modules.get("ray")  # imported only where the job runs as a Ray task
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


def _named_run_dir(config: "TrainConfig") -> Optional[Path]:
    return Path(config.run.output_dir) / config.run.name if config.run.name else None


def _finished_run(config: "TrainConfig") -> Optional[Dict[str, Any]]:
    run_dir = _named_run_dir(config)
    if run_dir is None or not (run_dir / SUMMARY_FILE).is_file():
        return None
    summary = Summary.read(run_dir)
    if summary.iterations < config.run.iterations:
        return None
    return _job_summary(config, run_dir, summary)


def _resume_or_move_aside(config: "TrainConfig") -> Optional[str]:
    """The named run folder to resume (it holds a checkpoint), else None; a folder without one is moved aside."""
    from proxmo.train.runfolder import acquire_writer, latest_checkpoint

    run_dir = _named_run_dir(config)
    if run_dir is None or not run_dir.exists() or config.run.resume:
        return None
    acquire_writer(run_dir).release()  # a folder a live job writes is neither resumed nor moved: refused, saying so
    if latest_checkpoint(run_dir) is not None:
        return str(run_dir)
    run_dir.rename(run_dir.with_name(f"{run_dir.name}.unfinished-{time.strftime('%Y%m%d-%H%M%S')}"))
    return None


@task(name="train-job")
def train_job(
    config: Dict[str, Any],
    launcher: str = "local",
    num_gpus: float = 0.0,
    ray_address: Optional[str] = None,
    num_cpus: float = 1.0,
    trial: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """One training job, in this process (``local``) or as a Ray task asking for ``num_cpus`` and ``num_gpus`` (``ray``).

    Under a flow that started Ray, jobs submitted together run side by side on the cluster.
    """
    from proxmo.train.config import build_config

    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher: expected one of {LAUNCHERS}, got {launcher!r}")
    checked = build_config(copy.deepcopy(dict(config)))
    run_dir = _named_run_dir(checked)
    try:
        with follow_progress(run_dir, checked.run.iterations, get_run_logger()):
            if launcher == "local":
                return run_job(config, trial)
            return _on_ray(config, trial, num_gpus, num_cpus, ray_address)
    except BaseException as error:
        # A job that died without ending its run (its process killed) must not stay RUNNING; a retry
        # continues the same run from its last checkpoint.
        if run_dir is not None:
            from proxmo.train.tracking import close_abandoned

            close_abandoned(run_dir, "FAILED" if isinstance(error, Exception) and not _killed(error) else "KILLED")
        raise


def _on_ray(config: Mapping[str, Any], trial: Optional[Mapping[str, Any]], num_gpus: float, num_cpus: float,
            ray_address: Optional[str]) -> Dict[str, Any]:
    import ray

    with ray_session("ray", ray_address):  # a no-op under a flow that started Ray already
        remote = ray.remote(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=0)(run_job)
        return ray.get(remote.remote(dict(config), trial))


def _killed(error: BaseException) -> bool:
    """Whether ``error`` says the job's process was killed (a Ray worker that died) rather than that it failed."""
    try:
        from ray.exceptions import WorkerCrashedError
    except ImportError:
        return False
    return isinstance(error, WorkerCrashedError)


def progress_lines(record: Mapping[str, Any], iterations: Optional[int] = None) -> List[str]:
    """What a deployed run's log says about one metrics record: one line per iteration, one per evaluation."""
    step, metrics = int(record["step"]), record["metrics"]
    lines = []
    if TRAIN_SUCCESS in metrics:
        total = f"/{iterations}" if iterations else ""
        lines.append(f"iteration {step}{total}: train success {metrics[TRAIN_SUCCESS]:.3f}"
                     + (f", loss {metrics[LOSS]:.4f}" if LOSS in metrics else "")
                     + (f", {metrics[ITERATION_SECONDS]:.2f} s" if ITERATION_SECONDS in metrics else ""))
    for source, label in ((RANDOM, "random agent"), (VAL, "evaluation"), (GREEDY, "greedy evaluation")):
        if success_key(source) in metrics:
            lines.append(f"{label} at {step}: success {metrics[success_key(source)]:.3f}"
                         f" ± {metrics.get(quantity_key(source, 'success_se'), float('nan')):.3f}"
                         f" over {metrics.get(quantity_key(source, 'episodes'), float('nan')):.0f} episodes")
    return lines


@contextmanager
def follow_progress(run_dir: Optional[Path], iterations: Optional[int], log, every: float = 0.5) -> Iterator[None]:
    """While the block runs, log the lines of :func:`progress_lines` for every new record of
    ``run_dir/metrics.jsonl`` (written by the job here or in a Ray worker on the same file system)."""
    if run_dir is None:
        yield
        return
    from proxmo.train.tracking import parse_records

    path = Path(run_dir) / METRICS_FILE
    offset = path.stat().st_size if path.exists() else 0  # a resumed run: only what is new
    done = threading.Event()
    name = Path(run_dir).name

    def read_new() -> None:
        nonlocal offset
        if not path.exists():
            return
        if path.stat().st_size < offset:  # the folder was moved aside and started again
            offset = 0
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        offset += len(complete)
        for record in parse_records(complete.decode().splitlines(), path, strict=False):
            for text in progress_lines(record, iterations):
                log.info("%s: %s", name, text)

    def follow() -> None:
        while not done.wait(every):
            read_new()
        read_new()

    thread = threading.Thread(target=follow, name=f"progress-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


def run_jobs(configs: Sequence[Dict[str, Any]], launcher: str = "local", retries: int = 1, num_gpus: float = 0.0,
             ray_address: Optional[str] = None, num_cpus: float = 1.0) -> List[Dict[str, Any]]:
    """Run every config as a :func:`train_job` task (``retries`` each; a retry resumes from the checkpoint) and
    answer their summaries in order: side by side as Ray tasks with ``launcher=ray``, else one after another
    (jobs in one process share torch's global state)."""
    job = train_job.with_options(retries=retries)
    with ray_session(launcher, ray_address):
        if launcher == "ray":
            futures = [job.submit(data, launcher, num_gpus, ray_address, num_cpus) for data in configs]
            return [future.result() for future in futures]
        return [job(data, launcher, num_gpus, ray_address, num_cpus) for data in configs]


@contextmanager
def ray_session(launcher: str, ray_address: Optional[str] = None) -> Iterator[None]:
    """With ``launcher=ray``: Ray is up for the block (started here, and shut down after, unless it already ran)."""
    if launcher != "ray":
        yield
        return
    import ray

    started = not ray.is_initialized()
    if started:  # without an address Ray joins RAY_ADDRESS if set, else starts here with this machine's cores
        ray.init(address=ray_address, include_dashboard=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def parent_run(experiment: str, name: str, role: str, tracking_uri: Optional[str], tags: Mapping[str, str]):
    """The MLflow run that a flow's jobs nest under (an ablation, a study): the earlier one of the same name
    and role when the flow is run again, else a new one. Returns an open :class:`MlflowTracker`."""
    import mlflow

    from proxmo.train.tracking import MlflowTracker, check_tracking_server, check_tracking_uri

    check_tracking_uri(tracking_uri)
    check_tracking_server(tracking_uri)  # a server that is down fails the flow in seconds, before any job
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    record = client.get_experiment_by_name(experiment)
    if record is not None:  # roles are fixed words; a name may hold any character, so it is compared here
        found = [run for run in client.search_runs([record.experiment_id], f"tags.{contract.TAG_ROLE} = '{role}'")
                 if run.data.tags.get(contract.TAG_GROUP) == name]
        if found:
            return MlflowTracker(experiment, tracking_uri=tracking_uri, run_id=found[0].info.run_id, tags=tags)
    return MlflowTracker(experiment, run_name=name, tracking_uri=tracking_uri,
                         tags={**tags, contract.TAG_GROUP: name, contract.TAG_ROLE: role})


def results_row(summaries: Sequence[Mapping[str, Any]], env_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """One line of the paper's results table from runs of one method over its seeds (job summaries).

    The columns are the ``result_columns`` of each environment's :class:`~envs.EnvSpec`, in the order of
    ``env_names`` (default: the environments of ``summaries`` in order of appearance): for ALFWorld the
    success per category and ``All``, for WebShop ``WS score`` and ``WS succ``. A cell is the mean over seeds
    with its 95% Student-t interval (``47.2 [39.2, 55.2]``; the mean alone for one seed); a column no run
    measured stays empty.
    """
    import envs
    from proxmo.results import t_interval

    names = list(env_names) if env_names is not None else list(dict.fromkeys(s["env"] for s in summaries))
    columns = {name: envs.spec(name).result_columns for name in names}
    values: Dict[str, List[float]] = {}
    for summary in summaries:
        final = summary.get("final_eval", {})
        for column in columns.get(summary["env"], ()):
            key = success_key(VAL, column.category) if column.quantity == "success" else quantity_key(VAL, column.quantity)
            if key in final:
                values.setdefault(column.label, []).append(column.scale * final[key])
    row: Dict[str, Any] = {"method": summaries[0].get("estimator", "?") if summaries else "?"}
    for column in (c for name in names for c in columns[name]):
        found = values.get(column.label)
        row[column.label] = t_interval(found).format(scale=1.0) if found else None
    row["seeds"] = len({s.get("seed") for s in summaries})
    return row


@task(name="publish-results")
def publish_results(rows: List[Dict[str, Any]], key: str, title: str) -> str:
    """Publish ``rows`` as a Prefect table artifact ``key`` and a markdown artifact ``key-md``; answers the markdown."""
    from proxmo.results.table import markdown_table

    markdown = markdown_table(rows, title)
    create_table_artifact(key=key, table=rows, description=title)
    create_markdown_artifact(key=f"{key}-md", markdown=markdown, description=title)
    return markdown
