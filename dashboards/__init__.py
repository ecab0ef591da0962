"""The sweep and ablation dashboard (Streamlit), and launchers for it and the MLflow and Optuna UIs."""

from proxmo.extras import require

require("platform", "the dashboards", ["streamlit", "plotly", "mlflow", "optuna", "pandas"])
