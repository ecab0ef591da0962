"""Prefect tasks around the training job: run it (here or as a Ray task that asks for GPUs) and publish its results."""

from __future__ import annotations

import copy
import json
import os
import statistics
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from envs.alfworld.categories import CATEGORIES

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

    data = copy.deepcopy(dict(config))
    finished = _finished_run(data)
    if finished is not None:
        return finished
    _resume_or_move_aside(data)
    callback = trial_reporter(trial) if trial else None
    result = train(build_config(data), progress=False, on_evaluation=callback)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    return _job_summary(data, result.run_dir, summary)


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


def _job_summary(config: Mapping[str, Any], run_dir: Path, summary: Mapping[str, Any]) -> Dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "run_name": run_dir.name,
        "iterations": summary.get("iterations", 0),
        "env": config.get("env", {}).get("name", "alfworld"),
        "estimator": config.get("advantage", {}).get("estimator", "proxmo"),
        "seed": config.get("run", {}).get("seed", 0),
        "final_eval": summary.get("final_eval", {}),
        "checkpoint": summary.get("checkpoint"),
        "summary": dict(summary),
        "pid": os.getpid(),  # which process ran (or found) the job: a Ray worker or this one
        "ray_node": _ray_node(),  # and on which Ray node (None outside Ray)
    }


def _ray_node() -> Optional[str]:
    import sys

    ray = sys.modules.get("ray")  # imported only where the job runs as a Ray task
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


def _named_run_dir(config: Mapping[str, Any]) -> Optional[Path]:
    run = config.get("run", {})
    return Path(run.get("output_dir", "runs")) / run["name"] if run.get("name") else None


def _finished_run(config: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    run_dir = _named_run_dir(config)
    if run_dir is None or not (run_dir / "summary.json").is_file():
        return None
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary.get("iterations", -1) < config.get("run", {}).get("iterations", 100):
        return None
    return _job_summary(config, run_dir, summary)


def _resume_or_move_aside(config: Dict[str, Any]) -> None:
    from proxmo.train.checkpoint import latest_checkpoint
    from proxmo.train.runfolder import acquire_writer

    run_dir = _named_run_dir(config)
    if run_dir is None or not run_dir.exists() or config["run"].get("resume"):
        return
    acquire_writer(run_dir).release()  # a folder a live job writes is neither resumed nor moved: refused, saying so
    if latest_checkpoint(run_dir) is not None:
        config["run"]["resume"] = str(run_dir)
    else:
        run_dir.rename(run_dir.with_name(f"{run_dir.name}.unfinished-{time.strftime('%Y%m%d-%H%M%S')}"))


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
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher: expected one of {LAUNCHERS}, got {launcher!r}")
    run_dir = _named_run_dir(config)
    try:
        with follow_progress(run_dir, config.get("run", {}).get("iterations"), get_run_logger()):
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
    if "train/success" in metrics:
        total = f"/{iterations}" if iterations else ""
        lines.append(f"iteration {step}{total}: train success {metrics['train/success']:.3f}"
                     + (f", loss {metrics['actor/loss']:.4f}" if "actor/loss" in metrics else "")
                     + (f", {metrics['timing/iteration_s']:.2f} s" if "timing/iteration_s" in metrics else ""))
    for prefix, label in (("val/random", "random agent"), ("val", "evaluation"), ("val/greedy", "greedy evaluation")):
        if f"{prefix}/success" in metrics:
            lines.append(f"{label} at {step}: success {metrics[f'{prefix}/success']:.3f}"
                         f" ± {metrics.get(f'{prefix}/success_se', float('nan')):.3f}"
                         f" over {metrics.get(f'{prefix}/episodes', float('nan')):.0f} episodes")
    return lines


@contextmanager
def follow_progress(run_dir: Optional[Path], iterations: Optional[int], log, every: float = 0.5) -> Iterator[None]:
    """While the block runs, log the lines of :func:`progress_lines` for every new record of
    ``run_dir/metrics.jsonl`` (written by the job here or in a Ray worker on the same file system)."""
    if run_dir is None:
        yield
        return
    path = Path(run_dir) / "metrics.jsonl"
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
        for line in complete.decode().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
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
        found = [run for run in client.search_runs([record.experiment_id], f"tags.proxmo_role = '{role}'")
                 if run.data.tags.get("proxmo_name") == name]
        if found:
            return MlflowTracker(experiment, tracking_uri=tracking_uri, run_id=found[0].info.run_id, tags=tags)
    return MlflowTracker(experiment, run_name=name, tracking_uri=tracking_uri,
                         tags={**tags, "proxmo_name": name, "proxmo_role": role})


def results_row(summaries: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """One line of the paper's results table from runs of one method over its seeds.

    ALFWorld runs fill the per-category success columns and ``All`` (percent); WebShop runs fill
    ``WS score`` (score x 100) and ``WS succ`` (percent). A cell is the mean over seeds with its 95%
    Student-t interval (``47.2 [39.2, 55.2]``; the mean alone for one seed); columns no run measured stay empty.
    """
    from proxmo.results import t_interval

    columns: Dict[str, List[float]] = {}
    for summary in summaries:
        final = summary.get("final_eval", {})
        if summary.get("env") == "alfworld":
            for category in CATEGORIES:
                key = f"val/success/{category}"
                if key in final:
                    columns.setdefault(category, []).append(100.0 * final[key])
            if "val/success" in final:
                columns.setdefault("All", []).append(100.0 * final["val/success"])
        elif summary.get("env") == "webshop":
            if "val/score" in final:
                columns.setdefault("WS score", []).append(100.0 * final["val/score"])
            if "val/success" in final:
                columns.setdefault("WS succ", []).append(100.0 * final["val/success"])
    row: Dict[str, Any] = {"method": summaries[0].get("estimator", "?") if summaries else "?"}
    for name in (*CATEGORIES, "All", "WS score", "WS succ"):
        values = columns.get(name)
        row[name] = t_interval(values).format(scale=1.0) if values else None
    row["seeds"] = len({s.get("seed") for s in summaries})
    return row


def markdown_table(rows: Sequence[Mapping[str, Any]], title: str = "") -> str:
    """A markdown table of ``rows`` (the keys of the first row are the columns; empty cells for None)."""
    if not rows:
        return f"{title}\n\n(no results)\n" if title else "(no results)\n"
    names = list(rows[0].keys())
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(names) + " |")
    lines.append("|" + "---|" * len(names))
    for row in rows:
        lines.append("| " + " | ".join("" if row.get(n) is None else str(row.get(n)) for n in names) + " |")
    return "\n".join(lines) + "\n"


@task(name="publish-results")
def publish_results(rows: List[Dict[str, Any]], key: str, title: str) -> str:
    """Publish ``rows`` as a Prefect table artifact ``key`` and a markdown artifact ``key-md``; answers the markdown."""
    markdown = markdown_table(rows, title)
    create_table_artifact(key=key, table=rows, description=title)
    create_markdown_artifact(key=f"{key}-md", markdown=markdown, description=title)
    return markdown
