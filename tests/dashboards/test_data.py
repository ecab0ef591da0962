"""The dashboard's numbers, read back from a real MLflow store and Optuna storage."""

import pytest

from dashboards import data
from proxmo.results import t_interval
from tests.dashboards.store import build_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("dashboard-store"))


def test_runs_are_listed_with_their_place_and_latest_metrics(store):
    runs = data.runs_frame(store)
    assert len(runs) == 1 + 6 + 1 + 8 + 1  # ablation parent and children, study parent and trials, a demo run
    children = runs[runs["variant"].notna()]
    assert sorted(children["name"]) == [f"{v}__s{s}" for v in ("grpo", "proxmo") for s in range(3)]
    parent = data.groups(runs, "ablation")
    assert list(parent["group"]) == ["grid"] and list(parent["runs"]) == [6]
    assert (children["parent"] == parent["run_id"].iloc[0]).all()
    assert "m:val/success" in runs and "m:timing/adv_fraction" in runs


def test_the_ablation_table_is_the_comparison_over_seeds(store):
    runs = data.runs_frame(store)
    parent = data.groups(runs, "ablation")["run_id"].iloc[0]
    rows, baseline = data.ablation_table(store, runs, parent)
    assert baseline == "grpo" and [r.variant for r in rows] == ["grpo", "proxmo"]
    finals = data.histories(store, list(runs[runs["variant"] == "proxmo"]["run_id"]), ["val/success"])
    last = finals.sort_values("step").groupby("run_id")["value"].last()
    assert rows[1].final.mean == pytest.approx(t_interval(list(last)).mean)
    assert rows[1].difference is not None and rows[0].difference is None
    curves = data.ablation_curves(store, runs, parent)
    assert set(curves["variant"]) == {"grpo", "proxmo"} and list(curves["n"].unique()) == [3]
    assert (curves["low"] <= curves["mean"]).all() and (curves["mean"] <= curves["high"]).all()


def test_sweeps_overhead_and_best_trials(store):
    runs = data.runs_frame(store)
    assert data.studies(store) == ["delta-tau"]
    study = data.load_study(store, "delta-tau")
    best = data.best_trials(study, runs, store, top=3)
    assert list(best["value"]) == sorted(best["value"], reverse=True) and len(best) == 3
    assert all("/#/experiments/" in link and "/runs/" in link for link in best["runs"]) and set(best["seeds"]) == {1}
    overhead = data.overhead(runs).set_index("estimator")
    assert overhead.loc["grpo", "advantage s / iteration"] < overhead.loc["proxmo", "advantage s / iteration"]


def test_an_empty_store_lists_nothing(tmp_path):
    empty = data.Store(f"sqlite:///{tmp_path / 'mlflow.db'}", None)
    assert data.runs_frame(empty).empty or set(data.runs_frame(empty)["experiment"]) <= {"Default"}
    assert data.studies(empty) == [] and data.overhead(data.runs_frame(empty)).empty


def test_every_run_is_listed_however_many_the_store_holds(store, monkeypatch):
    everything = data.runs_frame(store)
    monkeypatch.setattr(data, "PAGE_SIZE", 4)  # 17 runs over five pages (MLflow caps one request)
    paged = data.runs_frame(store)
    assert len(paged) == len(everything) == 17
    assert sorted(paged["run_id"]) == sorted(everything["run_id"])
    assert list(paged["start"]) == sorted(paged["start"], reverse=True)  # still newest first
