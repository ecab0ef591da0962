"""The sweep flow: an Optuna study over ProxMO's δ and τ (and more), each trial a real training job."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.train import _preset, artifact_key
from proxmo.results import contract
from proxmo.results.contract import OBJECTIVES, SUCCESS, Summary
from proxmo.train.config import check_path_component, load_config
from proxmo.urls import default_optuna_storage, redact_url
from tasks.publish import parent_run, publish_results
from tasks.study import STORAGE_ENV, Heartbeats, ask, make_pruner, open_study, study_storage, use_worker_stream
from tasks.training import ray_session, train_job

SEARCH_SPACE: Dict[str, Tuple[str, float, float, bool]] = {
    "delta": ("advantage.target_range", 0.01, 0.3, True),
    "beta": ("advantage.beta", 0.02, 1.0, True),
    "tau": ("advantage.temperature", 0.02, 1.0, True),
    "alpha": ("advantage.alpha", 1.0, 8.0, False),
    "omega": ("advantage.step_weight", 0.25, 2.0, False),
    "rollout_temperature": ("rollout.temperature", 0.5, 1.5, False),
}
"""Name -> (config field, low, high, log scale). δ (or β) and τ are searched by default."""

def _space(params: List[str], ranges: Optional[Dict[str, List[float]]]) -> Dict[str, Tuple[str, float, float, bool]]:
    unknown = [p for p in [*params, *(ranges or {})] if p not in SEARCH_SPACE]
    if unknown:
        raise ValueError(f"params: unknown {unknown}; choose from {list(SEARCH_SPACE)}")
    if "delta" in params and "beta" in params:
        raise ValueError("params: delta and beta set the same modulation strength; search one of them")
    space = {}
    for name in params:
        key, low, high, log = SEARCH_SPACE[name]
        if ranges and name in ranges:
            low, high = (float(v) for v in ranges[name])
        if not low < high or (log and low <= 0):
            raise ValueError(f"ranges.{name}: need 0 < low < high on a log scale, got [{low}, {high}]")
        space[name] = (key, low, high, log)
    return space


def _config(preset: str, overrides: List[str], values: Dict[str, Tuple[str, float]], name: str, number: int,
            output_dir: str, seed: int, several: bool = False) -> Dict[str, Any]:
    run_name = contract.trial_run_name(number, seed if several else None)
    config = load_config(_preset(preset), [*overrides, *(f"{key}={value}" for key, value in values.values()),
                                           f"run.seed={seed}", f"run.output_dir={output_dir}/{name}",
                                           f"run.name={run_name}"])
    return config.to_dict()


@flow(name="sweep", log_prints=True)
def sweep_flow(
    preset: str = "configs/alfworld_demo.yaml",
    name: str = "sweep",
    n_trials: int = 24,
    concurrency: int = 2,
    params: Optional[List[str]] = None,
    ranges: Optional[Dict[str, List[float]]] = None,
    objective: Literal["final", "auc"] = "final",
    pruner: str = "median",
    overrides: Optional[List[str]] = None,
    seed: int = 0,
    seeds: Optional[List[int]] = None,
    storage: Optional[str] = None,
    output_dir: str = "runs/sweeps",
    launcher: Literal["local", "ray"] = "local",
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    ray_address: Optional[str] = None,
    experiment: str = "proxmo-sweeps",
    tracking_uri: Optional[str] = None,
) -> Dict[str, Any]:
    """Search ``params`` (default δ and τ) with TPE until the study holds ``n_trials`` finished trials.

    Each trial trains one job per seed in ``seeds`` (default ``[seed]``; ``seed`` also seeds the sampler) and
    scores the mean of their objectives, so a trial's value is not one seed's luck. Trials run
    ``concurrency`` at a time (side by side with ``launcher=ray``); each reports its
    evaluations to the study, whose pruner (``median``, ``none``, ``threshold:<lower>``) may stop it
    early (PRUNED); a trial whose job fails is recorded as FAIL and the study goes on. The study lives
    in ``storage`` (default ``PROXMO_OPTUNA_STORAGE``, else SQLite ``optuna.db`` in the working
    directory; any RDB URL works; one with a password only through the variable, since Prefect stores a
    flow's parameters in plain text) and is loaded if it exists, so running the flow again continues it.
    Every trial is an MLflow run nested under the study's parent run.
    """
    import optuna

    logger = get_run_logger()
    check_path_component(name, "name")  # the study's folder
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    make_pruner(pruner)  # a bad name fails here, before any trial
    if n_trials < 1 or concurrency < 1:
        raise ValueError("n_trials and concurrency: must be >= 1")
    seeds = list(seeds) if seeds is not None else [seed]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: give distinct seeds, got {seeds}")
    space = _space(params or ["delta", "tau"], ranges)
    overrides = list(overrides or [])
    # Every setting is checked before the first trial: the config at the low end of every range.
    _config(preset, overrides, {n: (k, low) for n, (k, low, _, _) in space.items()}, name, 0, output_dir, seed)
    if storage and redact_url(storage) != storage:
        raise ValueError(f"storage: {redact_url(storage)} holds a password, and Prefect keeps a flow's parameters in "
                         f"plain text; set it in {STORAGE_ENV} instead (the `proxmo sweep` command does that for --storage)")
    storage = storage or default_optuna_storage()
    startup = min(8, n_trials)
    storage_backend = study_storage(storage)
    study = open_study(name, storage_backend, make_pruner(pruner), startup)  # fails dead workers' trials, not live ones
    flow_run_id = str(flow_run.get_id() or "")
    parent = parent_run(experiment, name, contract.ROLE_STUDY, tracking_uri, {contract.TAG_FLOW_RUN: flow_run_id})
    metric = SUCCESS
    with parent:  # ends FINISHED, FAILED, or KILLED when interrupted
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
        first_trial = None
        with ray_session(launcher, ray_address), Heartbeats(storage_backend) as heartbeats:
            while len(study.get_trials(deepcopy=False, states=finished)) < n_trials:
                left = n_trials - len(study.get_trials(deepcopy=False, states=finished))
                trials = []
                for _ in range(min(concurrency, left)):
                    trial = ask(study)
                    heartbeats.add(trial._trial_id)
                    trials.append(trial)
                    if first_trial is None:  # this worker's own sampler stream, before anything is sampled
                        first_trial = trial.number
                        use_worker_stream(study, seed, first_trial, startup)
                try:
                    jobs = []
                    for trial in trials:
                        values = {n: (k, trial.suggest_float(n, low, high, log=log))
                                  for n, (k, low, high, log) in space.items()}
                        trial_jobs = []
                        for index, job_seed in enumerate(seeds):
                            data = _config(preset, overrides, values, name, trial.number, output_dir, job_seed,
                                           several=len(seeds) > 1)
                            data["run"].update(tracker="both", experiment=experiment, tracking_uri=tracking_uri,
                                               parent_run_id=parent.run_id)
                            data["run"]["tags"] = {**data["run"]["tags"], contract.TAG_STUDY: name,
                                                   contract.TAG_TRIAL: str(trial.number),
                                                   contract.TAG_FLOW_RUN: flow_run_id}
                            # The first seed's evaluations are the trial's intermediate values; every seed's job
                            # asks the pruner, so a pruned trial stops all of them.
                            reporter = {"storage": storage, "study": name, "number": trial.number, "metric": metric,
                                        "pruner": pruner, "report": index == 0}
                            trial_jobs.append(train_job.with_options(retries=0).submit(
                                data, launcher, num_gpus, ray_address, num_cpus, reporter) if launcher == "ray"
                                else _run_now(data, launcher, num_gpus, ray_address, num_cpus, reporter))
                        jobs.append(trial_jobs)
                    for trial, trial_jobs in zip(trials, jobs):
                        _tell(study, trial, trial_jobs, seeds, objective, logger)
                        heartbeats.discard(trial._trial_id)
                except BaseException:  # interrupted: this worker's unfinished trials end FAIL, not RUNNING for ever
                    for trial in trials:
                        _fail_if_running(storage_backend, study, trial)
                    raise
        best = study.best_trial if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) else None
        rows = _trial_rows(study, space)
        _log_trials(parent, rows, best)
        publish_results(rows, key=f"sweep-{artifact_key(name)}", title=f"sweep {name}: trials by objective ({objective})")
        return {"parent_run_id": parent.run_id, "study": name, "storage": redact_url(storage), "trials": rows,
                "best_params": best.params if best else None, "best_value": best.value if best else None}


class _Done:
    """A job that already ran (the local launcher runs trials one after another), shaped like a Prefect future."""

    def __init__(self, value: Any = None, error: Optional[BaseException] = None):
        self.value, self.error = value, error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _run_now(*args) -> _Done:
    try:
        return _Done(train_job.with_options(retries=0)(*args))
    except Exception as error:  # noqa: BLE001 - recorded as a failed trial
        return _Done(error=error)


def _tell(study, trial, jobs, seeds: List[int], objective: str, logger) -> None:
    """Tell the study how ``trial`` ended: FAIL if a seed's job failed, PRUNED if the pruner stopped it, else the
    mean objective over its seeds (each seed's value kept as the trial's user attribute ``values``)."""
    import optuna

    summaries: List[Summary] = []
    for job_seed, job in zip(seeds, jobs):
        try:
            summaries.append(Summary.from_dict(job.result()["summary"]))
        except Exception as error:  # noqa: BLE001 - a failed trial is recorded and the study goes on
            logger.warning("trial %d (seed %d) failed: %s", trial.number, job_seed, error)
    if len(summaries) < len(seeds):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    if any(summary.stopped for summary in summaries):
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    values = {str(s): summary.objective(objective) for s, summary in zip(seeds, summaries)}
    trial.set_user_attr("values", values)
    trial.set_user_attr("ray_nodes", [job.result().get("ray_node") for job in jobs])  # where its jobs trained
    value = sum(values.values()) / len(values)
    study.tell(trial, value)
    logger.info("trial %d: %s -> %.3f (per seed %s)", trial.number, trial.params, value, values)


def _fail_if_running(storage, study, trial) -> None:
    import optuna

    if storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.RUNNING:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _trial_rows(study, space) -> List[Dict[str, Any]]:
    rows = []
    for trial in study.trials:
        row: Dict[str, Any] = {"trial": trial.number, "state": trial.state.name,
                               "value": round(trial.value, 4) if trial.value is not None else None}
        row.update({name: round(trial.params[name], 4) if name in trial.params else None for name in space})
        per_seed = trial.user_attrs.get("values", {})
        row["per seed"] = ", ".join(f"{v:.3f}" for v in per_seed.values()) if len(per_seed) > 1 else None
        rows.append(row)
    return sorted(rows, key=lambda r: (r["value"] is None, -(r["value"] or 0.0), r["trial"]))


def _log_trials(parent, rows: List[Dict[str, Any]], best) -> None:
    if best is not None:
        parent.set_tags({f"best.{k}": f"{v:.6g}" for k, v in best.params.items()} | {"best.value": f"{best.value:.4f}"})
    with tempfile.TemporaryDirectory() as folder:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
        path = Path(folder) / "trials.csv"
        path.write_text(buffer.getvalue())
        parent.log_artifact(path)

