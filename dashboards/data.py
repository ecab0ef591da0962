"""What the dashboard shows, read from the MLflow tracking store and the Optuna storage only (never run folders).

Everything here is plain functions of a store, so the app stays a thin layout and the tests can check the
numbers without a browser. Listing runs is ``search_runs`` page by page (latest metric values come with it);
metric histories are fetched only for the runs on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from proxmo.results import RunSummary, compare_variants, contract
from proxmo.results.contract import ADV_FRACTION, ADV_SECONDS, SUCCESS, best_value, final_value
from proxmo.urls import MLFLOW_UI


@dataclass
class Store:
    """Where the dashboard reads: an MLflow tracking URI and an Optuna storage URL (either may be absent)."""

    tracking_uri: Optional[str]
    optuna_storage: Optional[str]
    mlflow_ui: str = MLFLOW_UI

    def client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.tracking_uri)


PAGE_SIZE = 1000
"""Runs fetched per request; every page is read, so no run is left out however many the store holds."""


def _all_runs(client, experiment_ids: List[str]):
    """Every run of the experiments, newest first, a page at a time (MLflow caps one request)."""
    token = None
    while True:
        page = client.search_runs(experiment_ids, max_results=PAGE_SIZE, order_by=["attributes.start_time DESC"],
                                  page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def runs_frame(store: Store) -> pd.DataFrame:
    """One row per MLflow run of every active experiment (all of them: the listing pages through the store): names,
    tags that place it (parent, role, variant, seed, study, trial, estimator, env) and its latest metric values
    (columns ``m:<metric>``)."""
    client = store.client()
    experiments = {e.experiment_id: e.name for e in _all_experiments(client)}
    if not experiments:
        return pd.DataFrame()
    runs = _all_runs(client, list(experiments))
    rows = []
    for run in runs:
        tags = run.data.tags
        row: Dict[str, Any] = {
            "run_id": run.info.run_id, "name": run.info.run_name, "experiment": experiments[run.info.experiment_id],
            "experiment_id": run.info.experiment_id, "status": run.info.status, "start": run.info.start_time,
            "parent": tags.get(contract.TAG_PARENT), "role": tags.get(contract.TAG_ROLE),
            "group": tags.get(contract.TAG_GROUP), "baseline": tags.get(contract.TAG_BASELINE),
            "variant": tags.get(contract.TAG_VARIANT), "study": tags.get(contract.TAG_STUDY),
            "trial": tags.get(contract.TAG_TRIAL), "estimator": tags.get(contract.TAG_ESTIMATOR),
            "env": tags.get(contract.TAG_ENV), "eval_key": tags.get(contract.TAG_EVAL_KEY, ""),
            "seed": run.data.params.get(contract.SEED_PARAM),
        }
        row.update({f"m:{key}": value for key, value in run.data.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _all_experiments(client):
    token = None
    while True:
        page = client.search_experiments(max_results=PAGE_SIZE, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def histories(store: Store, run_ids: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """Long table (run_id, metric, step, value) of the given metrics' histories for the given runs."""
    client = store.client()
    rows = []
    for run_id in run_ids:
        for key in keys:
            for point in client.get_metric_history(run_id, key):
                rows.append({"run_id": run_id, "metric": key, "step": point.step, "value": point.value})
    return pd.DataFrame(rows, columns=["run_id", "metric", "step", "value"])


def metric_names(store: Store, run_id: str, prefix: str) -> List[str]:
    """The metrics of a run that start with ``prefix`` (e.g. every ``val/success/<category>``)."""
    return sorted(k for k in store.client().get_run(run_id).data.metrics if k.startswith(prefix))


def groups(runs: pd.DataFrame, role: str) -> pd.DataFrame:
    """The parent runs of one role (``ablation``, ``study``, ``reproduction``), newest first, with their child count."""
    if runs.empty or "role" not in runs:
        return pd.DataFrame()
    parents = runs[runs["role"] == role].copy()
    counts = runs["parent"].value_counts()
    parents["runs"] = [int(counts.get(run_id, 0)) for run_id in parents["run_id"]]
    return parents


def ablation_table(store: Store, runs: pd.DataFrame, parent_id: str, baseline: Optional[str] = None):
    """The comparison of an ablation's variants over seeds (``proxmo.results.compare_variants``), from the
    child runs' MLflow metrics, final and best as the run contract defines them. The baseline is ``baseline``
    if it is a variant, else the one the ablation recorded on its parent run, else the contract's default over
    the variants in the order the ablation started them (what the ablation flow picks). Answers (rows, baseline)."""
    children = runs[(runs["parent"] == parent_id) & runs["variant"].notna() & (runs["status"] == "FINISHED")]
    children = children.sort_values("start")  # variants in the order the ablation ran them
    if children.empty:
        return [], None
    curves = histories(store, list(children["run_id"]), [SUCCESS, ADV_FRACTION])
    summaries = []
    for _, child in children.iterrows():
        mine = curves[curves["run_id"] == child["run_id"]]
        values = list(mine[mine["metric"] == SUCCESS].sort_values("step")["value"])
        if not values:
            continue
        adv = mine[mine["metric"] == ADV_FRACTION]["value"]  # the run's mean, as in its summary
        summaries.append(RunSummary(str(child["variant"]), int(child["seed"] or 0), final_value(values),
                                    best_value(values), str(child["eval_key"] or ""),
                                    adv_fraction=float(adv.mean()) if len(adv) else None))
    variants = list(dict.fromkeys(s.variant for s in summaries))
    if baseline not in variants:
        recorded = runs.loc[runs["run_id"] == parent_id, "baseline"] if "baseline" in runs else pd.Series(dtype=object)
        baseline = recorded.iloc[0] if len(recorded) and recorded.iloc[0] in variants else None
    if baseline is None:
        baseline = contract.default_baseline(variants)
    return compare_variants(summaries, baseline=baseline), baseline


def ablation_curves(store: Store, runs: pd.DataFrame, parent_id: str, metric: str = SUCCESS) -> pd.DataFrame:
    """Per variant and step: mean over seeds and its 95% band (columns variant, step, mean, low, high, n)."""
    from proxmo.results.curves import band

    children = runs[(runs["parent"] == parent_id) & runs["variant"].notna()]
    points = histories(store, list(children["run_id"]), [metric])
    rows = []
    for variant, members in children.sort_values("start").groupby("variant", sort=False):
        curves = [list(zip(p["step"], p["value"])) for _, p in points[points["run_id"].isin(members["run_id"])]
                  .sort_values("step").groupby("run_id")]
        for step, mean, low, high in band(curves):
            rows.append({"variant": variant, "step": step, "mean": mean, "low": low, "high": high, "n": len(curves)})
    return pd.DataFrame(rows, columns=["variant", "step", "mean", "low", "high", "n"])


def overhead(runs: pd.DataFrame) -> pd.DataFrame:
    """Per estimator over its finished runs: mean advantage seconds per iteration and share of the iteration."""
    seconds, share = f"m:{ADV_SECONDS}", f"m:{ADV_FRACTION}"
    if runs.empty or not {seconds, share} <= set(runs.columns):
        return pd.DataFrame(columns=["estimator", "runs", "advantage s / iteration", "advantage share (%)"])
    finished = runs[(runs["status"] == "FINISHED") & runs["estimator"].notna() & runs[seconds].notna()]
    table = finished.groupby("estimator").agg(runs=("run_id", "count"), adv_s=(seconds, "mean"),
                                              share=(share, "mean")).reset_index()
    return pd.DataFrame({"estimator": table["estimator"], "runs": table["runs"],
                         "advantage s / iteration": table["adv_s"].round(5),
                         "advantage share (%)": (100 * table["share"]).round(3)})


def studies(store: Store) -> List[str]:
    """The names of the studies in the Optuna storage ([] when there is no storage or it is empty)."""
    if not store.optuna_storage:
        return []
    import optuna

    return sorted(s.study_name for s in optuna.get_all_study_summaries(store.optuna_storage, include_best_trial=False))


def load_study(store: Store, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=store.optuna_storage)


def best_trials(study, runs: pd.DataFrame, store: Store, top: int = 5) -> pd.DataFrame:
    """The best completed trials with their parameters and links to their MLflow runs."""
    import optuna

    done = sorted((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
                  key=lambda t: t.value, reverse=True)[:top]
    rows = []
    for trial in done:
        row: Dict[str, Any] = {"trial": trial.number, "value": round(trial.value, 4)}
        row.update({k: round(v, 4) if isinstance(v, float) else v for k, v in trial.params.items()})
        linked = runs[(runs.get("study") == study.study_name) & (runs.get("trial") == str(trial.number))] \
            if not runs.empty and "study" in runs else pd.DataFrame()
        first = next(linked.itertuples(), None)  # the first seed's run (a trial may train several)
        row["runs"] = f"{store.mlflow_ui}/#/experiments/{first.experiment_id}/runs/{first.run_id}" if first else None
        row["seeds"] = len(linked)
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["Store", "ablation_curves", "ablation_table", "best_trials", "groups", "histories",
           "load_study", "metric_names", "overhead", "runs_frame", "studies"]
