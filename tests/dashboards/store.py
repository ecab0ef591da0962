"""A small but complete store for the dashboard: an ablation (parent and nested runs over seeds), a sweep (an
Optuna study whose trials are nested MLflow runs) and a plain run, with made-up but plausible metrics."""

from __future__ import annotations

import math
import random
from pathlib import Path

from dashboards.data import Store

CATEGORIES = ("Clean", "Cool", "Heat", "Look", "Pick", "Pick2")


def _log_run(tracker, seed: int, level: float, steps=(0, 10, 20, 30), estimator: str = "proxmo") -> None:
    rng = random.Random(seed * 1000 + int(level * 100))
    tracker.log_params({"run": {"seed": seed}, "advantage": {"estimator": estimator}})
    tracker.set_tags({"estimator": estimator, "env": "alfworld", "eval_tasks_hash": "fixture"})
    for step in steps:
        value = min(1.0, 0.2 + level * step / steps[-1] + rng.uniform(-0.03, 0.03))
        metrics = {"val/success": value, "val/success_se": math.sqrt(value * (1 - value) / 144)}
        metrics.update({f"val/success/{c}": min(1.0, value * (0.5 + i / 5)) for i, c in enumerate(CATEGORIES)})
        if step:
            adv = 0.0004 if estimator == "grpo" else 0.0009
            metrics.update({"timing/rollout_s": 0.2, "timing/adv_s": adv, "timing/update_s": 0.1,
                            "timing/adv_fraction": adv / 0.3, "train/success": value})
        tracker.log_metrics(metrics, step=step)
    tracker.close()


def build_store(folder: Path, ablation_seeds: int = 3, trials: int = 8, extra_runs: int = 0) -> Store:
    """Write the store under ``folder`` (a SQLite MLflow store and a SQLite Optuna storage); answer where it is."""
    import optuna

    from proxmo.train.tracking import MlflowTracker

    folder.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{folder / 'mlflow.db'}", f"sqlite:///{folder / 'optuna.db'}")
    parent = MlflowTracker("ablations", run_name="grid", tracking_uri=store.tracking_uri,
                           tags={"proxmo_role": "ablation", "proxmo_name": "grid"})
    for variant, level in (("grpo", 0.25), ("proxmo", 0.32)):
        for seed in range(ablation_seeds):
            child = MlflowTracker("ablations", run_name=f"{variant}__s{seed}", tracking_uri=store.tracking_uri,
                                  parent_run_id=parent.run_id, tags={"variant": variant, "ablation": "grid"})
            _log_run(child, seed, level, estimator=variant)
    parent.close()

    study = optuna.create_study(study_name="delta-tau", storage=store.optuna_storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    sweep = MlflowTracker("sweeps", run_name="delta-tau", tracking_uri=store.tracking_uri,
                          tags={"proxmo_role": "study", "proxmo_name": "delta-tau"})
    for _ in range(trials):
        trial = study.ask()
        delta = trial.suggest_float("delta", 0.01, 0.3, log=True)
        tau = trial.suggest_float("tau", 0.02, 1.0, log=True)
        level = 0.35 - 0.5 * (math.log10(delta) + 1.2) ** 2 * 0.1 - 0.05 * abs(math.log10(tau) + 1)
        run = MlflowTracker("sweeps", run_name=f"trial{trial.number:03d}", tracking_uri=store.tracking_uri,
                            parent_run_id=sweep.run_id, tags={"study": "delta-tau", "trial": str(trial.number)})
        _log_run(run, 0, level)
        study.tell(trial, 0.2 + level)
    sweep.close()

    for index in range(extra_runs):
        _log_run(MlflowTracker("runs", run_name=f"run{index:03d}", tracking_uri=store.tracking_uri), index,
                 0.1 + 0.01 * (index % 20), estimator=("grpo", "gigpo", "proxmo")[index % 3])
    _log_run(MlflowTracker("demo", run_name="alfworld__proxmo__s0", tracking_uri=store.tracking_uri), 0, 0.3)
    return store
