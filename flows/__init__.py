"""Prefect flows: a training run and the paper's results table (``train``, ``reproduce``), an ablation grid
(``ablate``) and an Optuna study (``sweep``)."""

from proxmo.extras import require
from proxmo.telemetry import keep_local

keep_local()  # before Prefect, MLflow or Ray is imported

require("platform", "the flows", ["prefect", "ray", "mlflow", "optuna"])
