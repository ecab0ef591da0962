"""The proxmo dashboard: ablations, sweeps, runs and overhead, read from MLflow and Optuna.

Run it with ``proxmo dashboard`` (or ``proxmo ui`` for it and the MLflow and Optuna UIs). The stores come from
``MLFLOW_TRACKING_URI``, ``PROXMO_OPTUNA_STORAGE`` and ``PROXMO_MLFLOW_UI`` (the MLflow UI that run links point to).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `streamlit run` does not put the project on the path

from dashboards import data  # noqa: E402
from proxmo.results.contract import PHASES, SUCCESS, category_of, timing_key  # noqa: E402
from proxmo.urls import MLFLOW_UI, MLFLOW_UI_ENV, OPTUNA_STORAGE_ENV, TRACKING_URI_ENV, redact_url  # noqa: E402

EMPTY_HINT = ("Nothing here yet. Train a run (`make run`), an ablation (`proxmo ablate configs/alfworld_demo.yaml`) "
              "or a sweep (`proxmo sweep configs/alfworld_demo.yaml`), then reload.")


def _store() -> data.Store:
    return data.Store(os.environ.get(TRACKING_URI_ENV), os.environ.get(OPTUNA_STORAGE_ENV),
                      os.environ.get(MLFLOW_UI_ENV, MLFLOW_UI))


@st.cache_data(ttl=30, show_spinner=False)
def _runs(tracking_uri, storage, ui) -> pd.DataFrame:
    return data.runs_frame(data.Store(tracking_uri, storage, ui))


def _band_figure(curves: pd.DataFrame, title: str) -> go.Figure:
    figure = go.Figure()
    for index, (variant, rows) in enumerate(curves.groupby("variant", sort=False)):
        colour = _COLOURS[index % len(_COLOURS)]
        figure.add_trace(go.Scatter(x=list(rows["step"]) + list(rows["step"])[::-1],
                                    y=list(rows["high"]) + list(rows["low"])[::-1], fill="toself", opacity=0.18,
                                    line={"width": 0}, fillcolor=colour, hoverinfo="skip", showlegend=False))
        figure.add_trace(go.Scatter(x=rows["step"], y=rows["mean"], mode="lines+markers", line={"color": colour},
                                    name=f"{variant} (n={int(rows['n'].iloc[0])})"))
    figure.update_layout(title=title, xaxis_title="iteration", yaxis_title="validation success", height=380,
                         margin={"t": 40, "b": 30})
    return figure


_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def ablations(store: data.Store, runs: pd.DataFrame) -> None:
    st.header("Ablations")
    parents = data.groups(runs, "ablation")
    if parents.empty:
        st.info("No ablation yet: `proxmo ablate configs/alfworld_demo.yaml --seed 0 --seed 1 --seed 2`.")
        return
    labels = {f"{r.group} ({r.experiment}, {r.runs} runs)": r.run_id for r in parents.itertuples()}
    choice = st.selectbox("ablation", list(labels), key="ablation")
    rows, baseline = data.ablation_table(store, runs, labels[choice])
    if not rows:
        st.info("This ablation has no finished run with an evaluation yet.")
        return
    table = pd.DataFrame([{
        "variant": r.variant, "seeds": len(r.seeds), "final success (%)": r.final.format(),
        f"final - {baseline}": r.difference.format() if r.difference is not None else "-",
        "best (optimistic)": r.best.format(),
        "final per seed": ", ".join(f"{100 * v:.1f}" for v in r.final_by_seed.values()),
        "advantage share (%)": f"{100 * r.adv_fraction:.2f}" if r.adv_fraction is not None else "",
    } for r in rows])
    st.caption("Mean over seeds [95% Student-t interval]; differences are paired by seed; 'best' is the maximum of "
               "noisy evaluations and optimistic.")
    st.dataframe(table, hide_index=True, width="stretch")
    curves = data.ablation_curves(store, runs, labels[choice])
    if not curves.empty:
        st.plotly_chart(_band_figure(curves, "validation success, mean over seeds with 95% band"), width="stretch")


def sweeps(store: data.Store, runs: pd.DataFrame) -> None:
    import optuna.visualization as views

    st.header("Sweeps")
    names = data.studies(store)
    if not names:
        st.info("No study yet: `proxmo sweep configs/alfworld_demo.yaml --trials 24`.")
        return
    name = st.selectbox("study", names, key="study")
    study = data.load_study(store, name)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    states = pd.Series([t.state.name for t in study.trials]).value_counts().to_dict()
    st.caption(f"{len(study.trials)} trials: " + ", ".join(f"{k.lower()} {v}" for k, v in states.items()))
    if len(complete) < 2:
        st.info("The charts need at least two completed trials.")
        return
    params = sorted({p for t in complete for p in t.params})
    left, right = st.columns(2)
    with left:
        st.plotly_chart(views.plot_contour(study, params=params[:2]) if len(params) >= 2
                        else views.plot_slice(study), width="stretch")
    with right:
        st.plotly_chart(views.plot_optimization_history(study), width="stretch")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(views.plot_parallel_coordinate(study), width="stretch")
    with right:
        try:
            st.plotly_chart(views.plot_param_importances(study), width="stretch")
        except (RuntimeError, ValueError) as error:  # too few distinct trials for the evaluator
            st.info(f"Parameter importance: {error}")
    st.subheader("Best trials")
    st.dataframe(data.best_trials(study, runs, store), hide_index=True, width="stretch",
                 column_config={"runs": st.column_config.LinkColumn("MLflow run")})


def runs_section(store: data.Store, runs: pd.DataFrame) -> None:
    st.header("Runs")
    trained = runs[runs["role"].isna()] if "role" in runs else runs
    if trained.empty:
        st.info(EMPTY_HINT)
        return
    labels = {f"{r.name} ({r.experiment}, {r.status.lower()})": r.run_id for r in trained.itertuples()}
    chosen = st.multiselect("runs", list(labels), default=list(labels)[:4], key="runs")
    if not chosen:
        return
    ids = [labels[c] for c in chosen]
    names = {labels[c]: c.split(" (")[0] for c in chosen}
    points = data.histories(store, ids, [SUCCESS])
    figure = go.Figure()
    for run_id, rows in points.groupby("run_id", sort=False):
        rows = rows.sort_values("step")
        figure.add_trace(go.Scatter(x=rows["step"], y=rows["value"], mode="lines+markers", name=names[run_id]))
    figure.update_layout(title="validation success", xaxis_title="iteration", height=360, margin={"t": 40, "b": 30})
    left, right = st.columns(2)
    with left:
        st.plotly_chart(figure, width="stretch")
    with right:
        first = ids[0]
        categories = [m for m in data.metric_names(store, first, SUCCESS + "/") if category_of(m) is not None]
        by_category = data.histories(store, [first], categories)
        figure = go.Figure()
        for metric, rows in by_category.groupby("metric"):
            rows = rows.sort_values("step")
            figure.add_trace(go.Scatter(x=rows["step"], y=rows["value"], mode="lines+markers",
                                        name=category_of(metric)))
        figure.update_layout(title=f"per category: {names[first]}", xaxis_title="iteration", height=360,
                             margin={"t": 40, "b": 30})
        st.plotly_chart(figure, width="stretch")
    phases = [p for p in PHASES if f"m:{timing_key(p)}" in trained]
    timing = trained[trained["run_id"].isin(ids)]
    if phases:
        figure = go.Figure([go.Bar(name=phase, x=[names[i] for i in timing["run_id"]], y=timing[f"m:{timing_key(phase)}"])
                            for phase in phases])
        figure.update_layout(barmode="stack", title="seconds per iteration by phase (last iteration)", height=320,
                             margin={"t": 40, "b": 30})
        st.plotly_chart(figure, width="stretch")


def overhead_section(runs: pd.DataFrame) -> None:
    st.header("Overhead")
    table = data.overhead(runs)
    if table.empty:
        st.info(EMPTY_HINT)
        return
    st.caption("Advantage computation per iteration, averaged over each estimator's finished runs (last iteration).")
    st.dataframe(table, hide_index=True, width="stretch")


def main() -> None:
    st.set_page_config(page_title="proxmo", layout="wide")
    st.title("proxmo: ablations, sweeps and runs")
    store = _store()
    st.caption(f"MLflow: {redact_url(store.tracking_uri) if store.tracking_uri else 'default store'} · "
               f"Optuna: {redact_url(store.optuna_storage) if store.optuna_storage else 'none'}")
    runs = _runs(store.tracking_uri, store.optuna_storage, store.mlflow_ui)
    if runs.empty and not data.studies(store):
        st.info(EMPTY_HINT)
        return
    ablations(store, runs)
    sweeps(store, runs)
    runs_section(store, runs)
    overhead_section(runs)


main()
