"""How fast the dashboard loads on a store of hundreds of runs.

Builds a SQLite MLflow store and Optuna storage (an ablation of 2 variants x ``--seeds`` seeds, a
``--trials``-trial sweep and ``--runs`` plain runs, all with metric histories), then times what a page view
does: listing every run (one query), the ablation table and its banded curves, the study's charts, and the
whole app rendered by Streamlit's test harness (first view, cold; second view, cached).

    OMP_NUM_THREADS=1 python benchmarks/dashboard.py --runs 300
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboards import data  # noqa: E402
from tests.dashboards.store import build_store  # noqa: E402


def _timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=24)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        store, build = _timed(build_store, Path(folder), args.seeds, args.trials, args.runs)
        runs, listing = _timed(data.runs_frame, store)
        parent = data.groups(runs, "ablation")["run_id"].iloc[0]
        _, table = _timed(data.ablation_table, store, runs, parent)
        _, curves = _timed(data.ablation_curves, store, runs, parent)

        def study_charts():
            import optuna.visualization as views

            study = data.load_study(store, "delta-tau")
            for view in (views.plot_contour, views.plot_optimization_history, views.plot_parallel_coordinate,
                         views.plot_param_importances):
                view(study)

        _, charts = _timed(study_charts)
        from streamlit.testing.v1 import AppTest

        saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "PROXMO_OPTUNA_STORAGE")}
        os.environ.update(MLFLOW_TRACKING_URI=store.tracking_uri, PROXMO_OPTUNA_STORAGE=store.optuna_storage)
        try:
            app = AppTest.from_file(str(ROOT / "dashboards" / "app.py"), default_timeout=300)
            _, first = _timed(app.run)
            _, second = _timed(app.run)
            assert not app.exception, [e.value for e in app.exception]
        finally:  # the app reads its stores from the environment; leave it as it was
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    result = {"runs": len(runs), "build_s": build, "list_runs_s": listing, "ablation_table_s": table,
              "ablation_curves_s": curves, "study_charts_s": charts, "page_first_s": first, "page_again_s": second}
    print(f"| runs in the store | {len(runs)} |\n|---|---|")
    for key, value in result.items():
        if key.endswith("_s"):
            print(f"| {key[:-2].replace('_', ' ')} (s) | {value:.2f} |")
    return result


if __name__ == "__main__":
    main()
