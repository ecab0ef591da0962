"""Prefect flows: a training run (``train``) and the paper's results table (``reproduce``)."""

from proxmo.extras import require

require("platform", "the flows", ["prefect", "ray", "mlflow", "optuna"])
