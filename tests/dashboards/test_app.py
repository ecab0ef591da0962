"""The dashboard app, run in-process by Streamlit's test harness on a real store, and empty."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboards.store import build_store

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("app-store"))


def _run(monkeypatch, tracking_uri, storage):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    if storage:
        monkeypatch.setenv("PROXMO_OPTUNA_STORAGE", storage)
    else:
        monkeypatch.delenv("PROXMO_OPTUNA_STORAGE", raising=False)
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_the_dashboard_shows_ablation_sweep_runs_and_overhead(monkeypatch, store):
    app = _run(monkeypatch, store.tracking_uri, store.optuna_storage)
    assert [h.value for h in app.header] == ["Ablations", "Sweeps", "Runs", "Overhead"]
    ablation = app.dataframe[0].value
    assert list(ablation["variant"]) == ["grpo", "proxmo"] and "final - grpo" in ablation.columns
    assert ablation["final success (%)"].str.contains(r"\[").all()  # intervals, not bare means
    charts = app.get("plotly_chart")
    assert len(charts) >= 7  # ablation bands, 4 sweep charts, 2 run charts (+ phases)
    assert "delta" in charts[1].proto.spec and "tau" in charts[1].proto.spec  # the contour over delta x tau
    best = app.dataframe[1].value
    assert len(best) == 5 and "runs" in best.columns
    assert list(app.dataframe[2].value["estimator"]) == ["grpo", "proxmo"]


def test_an_empty_store_says_what_to_run(monkeypatch, tmp_path):
    app = _run(monkeypatch, f"sqlite:///{tmp_path / 'mlflow.db'}", None)
    assert any("make run" in info.value for info in app.info)
