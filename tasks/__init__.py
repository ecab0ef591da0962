"""Prefect tasks: thin units of orchestrated work around the training job."""

from proxmo.extras import require

require("platform", "the Prefect tasks", ["prefect", "ray", "mlflow", "optuna"])
