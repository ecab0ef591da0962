"""The sweep flow: an Optuna study over ProxMO's δ and τ (and more), each trial a real training job."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.specs import SweepSpec
from flows.train import _preset, artifact_key
from proxmo.results import contract
from proxmo.results.contract import SUCCESS, Summary
from proxmo.train.config import TrainConfig, load_config
from proxmo.urls import default_optuna_storage, redact_url
from tasks.publish import parent_run, publish_results
from tasks.study import Heartbeats, ask, make_pruner, open_study, study_storage, use_worker_stream
from tasks.training import ray_session, train_job

__all__ = ["sweep_flow"]


def _config(spec: SweepSpec, values: Dict[str, Tuple[str, float]], number: int, seed: int) -> TrainConfig:
    run_name = contract.trial_run_name(number, seed if len(spec.seeds) > 1 else None)
    return load_config(_preset(spec.preset), [*spec.overrides, *(f"{key}={value}" for key, value in values.values()),
                                              f"run.seed={seed}", f"run.output_dir={spec.output_dir}/{spec.name}",
                                              f"run.name={run_name}"])


@flow(name="sweep", log_prints=True)
def sweep_flow(spec: SweepSpec = SweepSpec()) -> Dict[str, Any]:
    """Search ``params`` (default δ and τ) with TPE until the study holds ``n_trials`` finished trials.

    Each trial trains one job per seed in ``seeds`` (the first also seeds the sampler) and scores the mean of their
    objectives, so a trial's value is not one seed's luck. Trials run ``concurrency`` at a time (side by side with
    ``launcher=ray``); each reports its evaluations to the study, whose pruner (``median``, ``none``,
    ``threshold:<lower>``) may stop it early (PRUNED); a trial whose job fails is recorded as FAIL and the study
    goes on. The study lives in ``storage`` (default ``PROXMO_OPTUNA_STORAGE``, else SQLite ``optuna.db`` in the
    working directory; any RDB URL works; one with a password only through the variable, since Prefect stores a
    flow's parameters in plain text) and is loaded if it exists, so running the flow again continues it.
    Every trial is an MLflow run nested under the study's parent run.
    """
    import optuna

    logger = get_run_logger()
    space = spec.space()
    seed = spec.seeds[0]
    # Every setting is checked before the first trial: the config at the low end of every range.
    integers = _integer_params(_config(spec, {n: (k, low) for n, (k, low, _, _) in space.items()}, 0, seed), space)
    storage = spec.storage or default_optuna_storage()
    startup = min(8, spec.n_trials)
    storage_backend = study_storage(storage)
    study = open_study(spec.name, storage_backend, make_pruner(spec.pruner), startup)  # fails dead workers' trials
    flow_run_id = str(flow_run.get_id() or "")
    parent = parent_run(spec.experiment, spec.name, contract.ROLE_STUDY, spec.tracking_uri,
                        {contract.TAG_FLOW_RUN: flow_run_id})
    metric = SUCCESS
    launch = spec.launch()
    with parent:  # ends FINISHED, FAILED, or KILLED when interrupted
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
        first_trial = None
        with ray_session(spec), Heartbeats(storage_backend) as heartbeats:
            while len(study.get_trials(deepcopy=False, states=finished)) < spec.n_trials:
                left = spec.n_trials - len(study.get_trials(deepcopy=False, states=finished))
                trials = []
                for _ in range(min(spec.concurrency, left)):
                    trial = ask(study)
                    heartbeats.add(trial._trial_id)
                    trials.append(trial)
                    if first_trial is None:  # this worker's own sampler stream, before anything is sampled
                        first_trial = trial.number
                        use_worker_stream(study, seed, first_trial, startup)
                try:
                    jobs = []
                    for trial in trials:
                        values = {n: (k, trial.suggest_int(n, int(low), int(high), log=log) if n in integers
                                      else trial.suggest_float(n, low, high, log=log))
                                  for n, (k, low, high, log) in space.items()}
                        trial_jobs = []
                        for index, job_seed in enumerate(spec.seeds):
                            config = _config(spec, values, trial.number, job_seed)
                            config = config.with_updates(run={
                                "tracker": "both", "experiment": spec.experiment, "tracking_uri": spec.tracking_uri,
                                "parent_run_id": parent.run_id,
                                "tags": {**config.run.tags, contract.TAG_STUDY: spec.name,
                                         contract.TAG_TRIAL: str(trial.number), contract.TAG_FLOW_RUN: flow_run_id}})
                            # The first seed's evaluations are the trial's intermediate values; every seed's job
                            # asks the pruner, so a pruned trial stops all of them.
                            reporter = {"storage": storage, "study": spec.name, "number": trial.number,
                                        "metric": metric, "pruner": spec.pruner, "report": index == 0}
                            trial_jobs.append(train_job.with_options(retries=0).submit(config, launch, reporter)
                                              if spec.launcher == "ray" else _run_now(config, launch, reporter))
                        jobs.append(trial_jobs)
                    for trial, trial_jobs in zip(trials, jobs):
                        _tell(study, trial, trial_jobs, spec.seeds, spec.objective, logger)
                        heartbeats.discard(trial._trial_id)
                except BaseException:  # interrupted: this worker's unfinished trials end FAIL, not RUNNING for ever
                    for trial in trials:
                        _fail_if_running(storage_backend, study, trial)
                    raise
        best = study.best_trial if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) else None
        rows = _trial_rows(study, space)
        _log_trials(parent, rows, best)
        publish_results(rows, key=f"sweep-{artifact_key(spec.name)}",
                        title=f"sweep {spec.name}: trials by objective ({spec.objective})")
        return {"parent_run_id": parent.run_id, "study": spec.name, "storage": redact_url(storage), "trials": rows,
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


def _integer_params(config: TrainConfig, space: Dict[str, Tuple[str, float, float, bool]]) -> set:
    """The searched parameters whose config field holds an int (searched over integers); a field that is not a
    number (a switch, a name) is refused before any trial."""
    integers = set()
    for name, (key, low, high, _) in space.items():
        value: Any = config
        for part in key.split("."):
            value = getattr(value, part)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"params: {key} is not a numeric setting ({type(value).__name__}); a sweep searches "
                             "numbers (switch other settings with an ablation's variants)")
        if isinstance(value, int):
            if low != int(low) or high != int(high):
                raise ValueError(f"ranges.{name}: {key} takes whole numbers, got [{low}, {high}]")
            integers.add(name)
    return integers


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

