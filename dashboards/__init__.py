"""The sweep and ablation dashboard (Streamlit), and launchers for it and the MLflow and Optuna UIs."""

from proxmo.extras import require
from proxmo.telemetry import keep_local

keep_local()  # before Prefect, MLflow or Ray is imported

require("platform", "the dashboards", ["streamlit", "plotly", "mlflow", "optuna", "pandas"])
