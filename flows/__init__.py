"""Prefect flows: a training run (``train``) and the paper's results table (``reproduce``)."""

from proxmo.extras import require
from proxmo.telemetry import keep_local

keep_local()  # before Prefect, MLflow or Ray is imported

require("platform", "the flows", ["prefect", "ray", "mlflow", "optuna"])
