"""Prefect tasks: thin units of orchestrated work around the training job."""

from proxmo.extras import require
from proxmo.telemetry import keep_local

keep_local()  # before Prefect, MLflow or Ray is imported

require("platform", "the Prefect tasks", ["prefect", "ray", "mlflow", "optuna"])
